"""AWS exchanger: AssumeRoleWithWebIdentity through botocore, then GetCallerIdentity with the new credentials."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.errors import ConfigurationError, CredentialRejected
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.secret import Secret
from airflow_provider_idbt.identity.sources import SubjectToken
from airflow_provider_idbt.identity.subject_check import checked_subject_token
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint
from airflow_provider_idbt.identity.transport import HttpClient, RetryPolicy, parse_retry_after, with_retries

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)

# STS error codes that mean "the subject token itself is stale": read it again once before giving up.
STALE_SUBJECT_CODES = frozenset({"ExpiredTokenException", "InvalidIdentityToken"})
# Transient codes besides 5xx/429: STS could not reach the IdP's JWKS, or asks us to slow down.
TRANSIENT_CODES = frozenset({"IDPCommunicationError", "Throttling", "ThrottlingException", "RequestLimitExceeded"})
_FIXES = {
    "AccessDenied": "allow this web identity in the role's trust policy (see docs/connections/aws.md)",
    "InvalidIdentityToken": "register the token's issuer as an IAM OIDC provider with this audience",
    "ExpiredTokenException": "check that the platform still refreshes the web identity token",
    "IDPRejectedClaim": "the role's trust policy conditions (sub/aud) do not match the token's claims",
    "ValidationError": "check role_arn, role_session_name and duration_seconds",
}


@dataclass(frozen=True)
class AwsSessionCredentials:
    """Temporary AWS credentials; the secret parts are :class:`Secret` and never shown."""

    access_key_id: str
    secret_access_key: Secret
    session_token: Secret
    expires_at: datetime

    def secrets(self) -> tuple[str, ...]:
        return (self.secret_access_key.reveal(), self.session_token.reveal())


class AwsFederatedToken(FederatedToken):
    """A FederatedToken whose secret is the STS session token, carrying the full session credentials.

    ``reveal()`` gives the session token (what a warehouse that takes "a token" gets); clients that sign AWS
    requests (Redshift IAM, Athena) read ``credentials``.
    """

    __slots__ = ("credentials",)

    def __init__(self, credentials: AwsSessionCredentials, identity: IdentityContext) -> None:
        super().__init__(
            credentials.session_token.reveal(),
            expires_at=credentials.expires_at,
            identity=identity,
            audience=identity.audience,
        )
        self.credentials = credentials


# botocore's DEBUG records carry the web identity token (request params), the session token (canonical request)
# and the new credentials (response body); they are dropped while this module talks to STS.
CHATTY_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.auth", "botocore.awsrequest", "urllib3")
in_aws_call = threading.local()


class _DropWhileCallingSts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not getattr(in_aws_call, "active", False)


_QUIET = _DropWhileCallingSts()
for _name in CHATTY_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)


def load_botocore() -> Any:
    try:
        import botocore.session
    except ImportError:
        raise ConfigurationError(
            "the idbt_aws connection type needs botocore: pip install 'airflow-provider-idbt[aws]'"
        ) from None
    return botocore


class AwsWebIdentityExchanger:
    """Trades the worker's web identity token for temporary credentials of an IAM role."""

    def __init__(self, config: AwsWebIdentityConfig, *, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.http = HttpClient(config.conn_id, config.timeout, config.ca_bundle, self.retry)

    def __repr__(self) -> str:
        return f"AwsWebIdentityExchanger(conn_id={self.config.conn_id!r}, role_arn={self.config.role_arn!r})"

    def _client(self, credentials: AwsSessionCredentials | None = None) -> BaseClient:
        botocore = load_botocore()
        from botocore import UNSIGNED
        from botocore.config import Config

        cfg = self.config
        # botocore's own retries are off: ours honour Retry-After and share the policy of every exchanger.
        options: dict[str, Any] = {
            "connect_timeout": cfg.timeout,
            "read_timeout": cfg.timeout,
            "retries": {"total_max_attempts": 1},
        }
        keys: dict[str, Any] = {}
        if credentials is None:
            options["signature_version"] = UNSIGNED  # AssumeRoleWithWebIdentity is an unsigned call
        else:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key.reveal(),
                "aws_session_token": credentials.session_token.reveal(),
            }
        session = botocore.session.Session()
        return session.create_client(
            "sts",
            region_name=cfg.region,
            endpoint_url=cfg.sts_endpoint_url,
            verify=cfg.ca_bundle,
            config=Config(**options),
            **keys,
        )

    def _call(self, what: str, call: Any, secrets: tuple[str, ...]) -> Mapping[str, Any]:
        """One STS call with bounded retries; permanent refusals raise ``_StsRefused``."""
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
        from botocore.parsers import ResponseParserError

        def once() -> tuple[Any, str | None, float | None]:
            in_aws_call.active = True
            try:
                return call(), None, None
            except ClientError as exc:
                code, status, message, headers = aws_error_of(exc.response, secrets)
                if status >= 500 or status == 429 or code in TRANSIENT_CODES:
                    return None, f"{code or 'HTTP ' + str(status)}", parse_retry_after(headers.get("retry-after"))
                raise _StsRefused(code, message) from None
            except (ConnectionError, HTTPClientError) as exc:
                return None, f"{type(exc).__name__}: cannot reach STS", None
            except ResponseParserError:
                # Not STS's XML: a load balancer's error page, a cut-off answer; botocore says a retry may succeed.
                return None, "an answer that is not STS's XML", None
            except BotoCoreError as exc:
                raise ConfigurationError(
                    f"connection `{self.config.conn_id}`: botocore could not call STS ({type(exc).__name__})"
                ) from None
            finally:
                in_aws_call.active = False

        return with_retries(self.config.conn_id, f"AWS STS {what}", self.retry, once)

    def _assume(self, subject: SubjectToken) -> Mapping[str, Any]:
        cfg = self.config
        client = self._client()
        return self._call(
            "AssumeRoleWithWebIdentity",
            lambda: client.assume_role_with_web_identity(
                RoleArn=cfg.role_arn,
                RoleSessionName=cfg.session_name,
                WebIdentityToken=subject.value.reveal(),
                DurationSeconds=cfg.duration_seconds,
            ),
            (subject.value.reveal(),),
        )

    def fetch(self) -> AwsFederatedToken:
        """Assume the role with the current web identity token and confirm who the credentials belong to."""
        cfg = self.config
        subject = checked_subject_token(self.http, cfg.subject_source, cfg.subject_check)
        try:
            try:
                answer = self._assume(subject)
            except _StsRefused as refused:
                fresh = cfg.subject_source.get(refresh=True)
                if refused.code not in STALE_SUBJECT_CODES or fresh.value == subject.value:
                    raise
                log.info("connection `%s`: web identity token refused; retrying once with a re-read one", cfg.conn_id)
                subject = fresh
                answer = self._assume(subject)
        except _StsRefused as refused:
            raise CredentialRejected(
                f"connection `{cfg.conn_id}`: AWS STS refused to let the web identity from {subject.origin} assume "
                f"{cfg.role_arn} ({refused.code}: {refused.message}); "
                f"{_FIXES.get(refused.code, 'check the role and its trust policy')}"
            ) from None
        raw = answer["Credentials"]
        expires = raw["Expiration"]
        credentials = AwsSessionCredentials(
            access_key_id=raw["AccessKeyId"],
            secret_access_key=Secret(raw["SecretAccessKey"], "secret access key"),
            session_token=Secret(raw["SessionToken"], "session token"),
            expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC),
        )
        client = self._client(credentials)
        try:
            caller = self._call("GetCallerIdentity", client.get_caller_identity, credentials.secrets())
        except _StsRefused as refused:
            raise CredentialRejected(
                f"connection `{cfg.conn_id}`: the credentials of {cfg.role_arn} do not work "
                f"({refused.code}: {refused.message}); check for an SCP or session policy denying sts:*"
            ) from None
        identity = self._identity(answer, caller, credentials, client.meta.endpoint_url)
        log.info(
            "connection `%s`: credentials for %s (account %s), %s, expire %s",
            cfg.conn_id,
            identity.subject,
            identity.attributes.get("aws_account"),
            identity.fingerprint,
            identity.expires_at.isoformat(timespec="seconds"),
        )
        return AwsFederatedToken(credentials, identity)

    def _identity(
        self, answer: Mapping[str, Any], caller: Mapping[str, Any], creds: AwsSessionCredentials, endpoint: str
    ) -> IdentityContext:
        # Only non-personal facts: the account, and which web identity (a workload, not a person) was used.
        attributes = {"aws_account": str(caller.get("Account", ""))}
        for key, name in (("Provider", "web_identity_provider"), ("SubjectFromWebIdentityToken", "web_identity_sub")):
            if answer.get(key):
                attributes[name] = str(answer[key])
        audience = (str(answer["Audience"]),) if answer.get("Audience") else ()
        return IdentityContext(
            issuer=endpoint,
            subject=str(caller.get("Arn") or answer["AssumedRoleUser"]["Arn"]),
            expires_at=creds.expires_at,
            fingerprint=fingerprint(creds.session_token.reveal()),
            principal=self.config.role_arn,
            groups=self.config.groups,
            audience=audience,
            attributes=attributes,
        )


class _StsRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(code)


def aws_error_of(response: Mapping[str, Any], secrets: tuple[str, ...]) -> tuple[str, int, str, Mapping[str, str]]:
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    message = str(error.get("Message") or "")[:300]
    for secret in secrets:
        message = message.replace(secret, "***")
    return str(error.get("Code") or ""), int(meta.get("HTTPStatusCode") or 0), message, meta.get("HTTPHeaders") or {}
