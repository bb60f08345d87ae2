"""AWS outbound identity federation as a subject-token source: `sts:GetWebIdentityToken` through botocore.

The worker's own AWS credentials (botocore's default chain: on MWAA the execution role) ask STS for a JWT with the
audience the outside identity provider expects (Google workload identity federation, an Entra federated
credential, an OIDC token exchange); that JWT is the subject token. STS signs it with the account's keys, published
at the account's issuer URL (``/.well-known/openid-configuration``, ``/.well-known/jwks.json``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError, CredentialRejected
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.secret import Secret
from airflow_provider_idbt.identity.sources import (
    EXPIRY_MARGIN,
    JWT_TOKEN_TYPE,
    SubjectToken,
    _unverified_expiry,
)
from airflow_provider_idbt.identity.transport import RetryPolicy, parse_retry_after, with_retries

log = logging.getLogger(__name__)

KIND = "aws_outbound"
# The two algorithms STS signs with (botocore's model); Google and Entra verify RS256.
SIGNING_ALGORITHMS = ("RS256", "ES384")
DEFAULT_DURATION = 300  # STS's own default: the token only has to reach the identity provider
MAX_AUDIENCES = 10
MAX_TAGS = 50
# Worker credentials that have just expired are renewed by botocore's provider: worth another attempt.
TRANSIENT_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "ExpiredToken"}
)
_REFUSALS: dict[str, tuple[type[Exception], str]] = {
    "OutboundWebIdentityFederationDisabledException": (
        ConfigurationError,
        "outbound identity federation is not enabled for this AWS account; enable it once per account "
        "(IAM > Account settings, or `aws iam enable-outbound-web-identity-federation`)",
    ),
    "AccessDenied": (
        CredentialRejected,
        "allow `sts:GetWebIdentityToken` to the worker's role (on MWAA the execution role); a condition on "
        "`sts:IdentityTokenAudience`, `sts:SigningAlgorithm` or `sts:DurationSeconds` must admit this request, and "
        "an SCP or VPC endpoint policy may deny it too",
    ),
    "SessionDurationEscalationException": (
        ConfigurationError,
        "the token would outlive the worker's own session; lower `aws_duration_seconds`",
    ),
    "JWTPayloadSizeExceededException": (ConfigurationError, "send fewer or shorter `aws_request_tags`"),
    "ValidationError": (
        ConfigurationError,
        "check `aws_audience`, `aws_signing_algorithm`, `aws_duration_seconds` and `aws_request_tags`",
    ),
    "InvalidClientTokenId": (
        CredentialRejected,
        "the worker's AWS access key is unknown to STS; check the credentials botocore finds on the worker",
    ),
    "SignatureDoesNotMatch": (
        CredentialRejected,
        "STS could not verify the request's signature; check the worker's secret access key and clock",
    ),
}

_cache: dict[tuple[Hashable, ...], SubjectToken] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached outbound token (tests; a worker never needs to)."""
    with _cache_lock:
        _cache.clear()


def _botocore() -> Any:
    try:
        import botocore.session
    except ImportError:
        raise ConfigurationError(
            f"subject_token_source `{KIND}` calls AWS STS through botocore: pip install 'airflow-provider-idbt[aws]'"
        ) from None
    return botocore


@dataclass
class AwsOutboundTokenSource:
    """A JWT from `sts:GetWebIdentityToken`, signed by STS for ``audiences``, as the worker's subject token.

    The token is kept (per process, per request and caller) until shortly before it expires; ``refresh`` asks STS
    again. Nothing of it is logged: botocore's wire-level DEBUG records are dropped while STS is called.
    """

    conn_id: str
    audiences: tuple[str, ...]
    region: str
    signing_algorithm: str = "RS256"
    duration_seconds: int = DEFAULT_DURATION
    endpoint_url: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def description(self) -> str:
        return f"AWS STS GetWebIdentityToken for audience {', '.join(self.audiences)}"

    @property
    def token_type(self) -> str:
        return JWT_TOKEN_TYPE

    @classmethod
    def from_extra(
        cls, conn_id: str, extra: Mapping[str, Any], *, timeout: float, default_audience: str | None = None
    ) -> AwsOutboundTokenSource:
        """Validate the ``aws_*`` extras; every problem is a :class:`ConnectionFieldError` naming its field."""
        audiences = fields.words(conn_id, extra, "aws_audience", separators=", ") or (
            (default_audience,) if default_audience else ()
        )
        if not audiences:
            raise ConnectionFieldError(
                conn_id,
                "aws_audience",
                "is missing",
                "set it to the audience the identity provider expects in the token (its `aud`)",
            )
        if len(audiences) > MAX_AUDIENCES or any(len(a) > 1000 for a in audiences):
            raise ConnectionFieldError(
                conn_id, "aws_audience", "is too long", f"give 1-{MAX_AUDIENCES} audiences of at most 1000 characters"
            )
        algorithm = fields.text(extra, "aws_signing_algorithm") or "RS256"
        if algorithm not in SIGNING_ALGORITHMS:
            raise ConnectionFieldError(
                conn_id,
                "aws_signing_algorithm",
                f"is {algorithm!r}",
                f"use one of {', '.join(SIGNING_ALGORITHMS)} (RS256 unless the identity provider takes ES384)",
            )
        raw = extra.get("aws_duration_seconds")
        try:
            duration = DEFAULT_DURATION if raw is None or raw == "" else int(raw)
        except (TypeError, ValueError):
            duration = 0
        if not 60 <= duration <= 3600:
            raise ConnectionFieldError(
                conn_id, "aws_duration_seconds", f"is {raw!r}", "give 60-3600 seconds (default 300)"
            )
        region = (
            fields.text(extra, "aws_region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
        if not region:
            raise ConnectionFieldError(
                conn_id,
                "aws_region",
                "is missing (and neither AWS_REGION nor AWS_DEFAULT_REGION is set)",
                "set it to the worker's region, e.g. eu-west-1: GetWebIdentityToken has no global endpoint",
            )
        endpoint = fields.text(extra, "aws_sts_endpoint_url")
        if endpoint is not None:
            fields.checked_url(endpoint, lambda p, f: ConnectionFieldError(conn_id, "aws_sts_endpoint_url", p, f))
        return cls(
            conn_id=conn_id,
            audiences=audiences,
            region=region,
            signing_algorithm=algorithm,
            duration_seconds=duration,
            endpoint_url=endpoint,
            tags=_tags(conn_id, extra.get("aws_request_tags")),
            timeout=timeout,
        )

    def get(self, *, refresh: bool = False) -> SubjectToken:
        botocore = _botocore()
        session = botocore.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                f"connection `{self.conn_id}`: subject_token_source `{KIND}` found no AWS credentials on this worker; "
                "run it with an IAM role (MWAA's execution role, an instance profile, IRSA) or the usual AWS_* "
                "variables"
            )
        # The access key id (not a secret) tells two callers apart, e.g. after the role's credentials rotated.
        caller = credentials.get_frozen_credentials().access_key
        key: tuple[Hashable, ...] = (
            self.region,
            self.endpoint_url,
            self.audiences,
            self.signing_algorithm,
            self.duration_seconds,
            self.tags,
            caller,
        )
        with _cache_lock:
            cached = _cache.get(key)
            if refresh:
                _cache.pop(key, None)
            elif cached is not None and not cached.expired(datetime.now(UTC) + EXPIRY_MARGIN):
                return cached
        token = self._ask(session)
        with _cache_lock:
            _cache[key] = token
        return token

    def _ask(self, session: Any) -> SubjectToken:
        from botocore.config import Config

        # GetWebIdentityToken is regional only: never let a `legacy` setting pick sts.amazonaws.com.
        session.set_config_variable("sts_regional_endpoints", "regional")
        # botocore's own retries are off: ours honour Retry-After and share the policy of every exchanger.
        client = session.create_client(
            "sts",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"total_max_attempts": 1},
            ),
        )
        params: dict[str, Any] = {
            "Audience": list(self.audiences),
            "SigningAlgorithm": self.signing_algorithm,
            "DurationSeconds": self.duration_seconds,
        }
        if self.tags:
            params["Tags"] = [{"Key": k, "Value": v} for k, v in self.tags]
        answer = self._call(lambda: client.get_web_identity_token(**params))
        value = str(answer.get("WebIdentityToken") or "")
        if not value:
            raise CredentialRejected(
                f"connection `{self.conn_id}`: AWS STS answered GetWebIdentityToken without a token"
            )
        expires = answer.get("Expiration")
        expires_at: datetime | None = _unverified_expiry(value)
        if isinstance(expires, datetime):
            expires_at = expires.astimezone(UTC) if expires.tzinfo else expires.replace(tzinfo=UTC)
        origin = f"AWS STS GetWebIdentityToken at {client.meta.endpoint_url}"
        left = (expires_at - datetime.now(UTC)) if expires_at else None
        log.info(
            "connection `%s`: outbound web identity token from %s for %s (%s), valid %s",
            self.conn_id,
            client.meta.endpoint_url,
            ", ".join(self.audiences),
            self.signing_algorithm,
            f"{int(left.total_seconds())}s" if left is not None and left > timedelta(0) else "unknown",
        )
        return SubjectToken(Secret(value, "subject token"), JWT_TOKEN_TYPE, origin, expires_at)

    def _call(self, call: Any) -> Mapping[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            ParamValidationError,
        )
        from botocore.parsers import ResponseParserError

        from airflow_provider_idbt.identity.aws.exchanger import aws_error_of, in_aws_call

        def once() -> tuple[Any, str | None, float | None]:
            in_aws_call.active = True
            try:
                return call(), None, None
            except ClientError as exc:
                code, status, message, headers = aws_error_of(exc.response, ())
                if status >= 500 or status == 429 or code in TRANSIENT_CODES:
                    return None, code or f"HTTP {status}", parse_retry_after(headers.get("retry-after"))
                raise self._refusal(code, status, message) from None
            except (ConnectionError, HTTPClientError) as exc:
                return None, f"{type(exc).__name__}: cannot reach STS", None
            except ResponseParserError:
                # Not STS's XML: a load balancer's error page, a cut-off answer; botocore says a retry may succeed.
                return None, "an answer that is not STS's XML", None
            except NoCredentialsError:
                raise ConfigurationError(
                    f"connection `{self.conn_id}`: botocore found no AWS credentials to sign GetWebIdentityToken "
                    "with; run the worker with an IAM role"
                ) from None
            except ParamValidationError as exc:
                raise ConfigurationError(
                    f"connection `{self.conn_id}`: botocore refused the GetWebIdentityToken request ({exc}); "
                    "check the aws_* fields"
                ) from None
            except BotoCoreError as exc:
                raise ConfigurationError(
                    f"connection `{self.conn_id}`: botocore could not call STS GetWebIdentityToken "
                    f"({type(exc).__name__})"
                ) from None
            finally:
                in_aws_call.active = False

        return with_retries(self.conn_id, "AWS STS GetWebIdentityToken", self.retry, once)

    def _refusal(self, code: str, status: int, message: str) -> Exception:
        kind, fix = _REFUSALS.get(code, (CredentialRejected, "check the worker's role and the aws_* fields"))
        return kind(
            f"connection `{self.conn_id}`: AWS STS refused GetWebIdentityToken for audience "
            f"{', '.join(self.audiences)} ({code or 'HTTP ' + str(status)}: {message}); {fix}"
        )


def _tags(conn_id: str, value: Any) -> tuple[tuple[str, str], ...]:
    """Request tags (custom claims) as a JSON object or ``key=value`` pairs separated by commas."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                value = None
        else:
            pairs = [item.partition("=") for item in text.split(",") if item.strip()]
            value = {k.strip(): v.strip() for k, sep, v in pairs if sep} if all(p[1] for p in pairs) else None
    if (
        not isinstance(value, dict)
        or not value
        or len(value) > MAX_TAGS
        or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items())
    ):
        raise ConnectionFieldError(
            conn_id,
            "aws_request_tags",
            "is not a set of text tags",
            f'give a JSON object {{"job": "dbt"}} or job=dbt,team=analytics (at most {MAX_TAGS} tags)',
        )
    return tuple(sorted(value.items()))
