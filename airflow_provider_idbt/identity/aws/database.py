"""Database logins made from a task's temporary AWS credentials: Redshift database passwords and RDS IAM tokens.

Pure Python; botocore is imported on first use (extras ``[aws]`` / ``[redshift]``). Nothing here logs or shows a
password, token or key: the values live in :class:`Secret` until the warehouse login hands them to dbt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError, CredentialRejected
from airflow_provider_idbt.identity.aws.exchanger import (
    TRANSIENT_CODES,
    AwsFederatedToken,
    AwsSessionCredentials,
    aws_error_of,
    in_aws_call,
    load_botocore,
)
from airflow_provider_idbt.identity.secret import Secret
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.identity.transport import RetryPolicy, parse_retry_after, with_retries

# What AWS answers when the role's policy does not allow the call: no retry can change that.
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"})
TRANSIENT = TRANSIENT_CODES | {"ServiceUnavailable", "InternalFailure", "InternalServerException", "TooManyRequests"}
# An RDS IAM authentication token is accepted for 15 minutes after it was signed (botocore signs it so).
RDS_TOKEN_LIFETIME = timedelta(seconds=900)
TIMEOUT = 15.0


@dataclass(frozen=True)
class DatabaseLogin:
    """A database user and its temporary password; ``repr`` never shows the password."""

    user: str
    password: Secret
    expires_at: datetime


def session_credentials(token: FederatedToken, warehouse: str) -> AwsSessionCredentials:
    """The temporary AWS credentials a task's token carries; a clear error for a token of another cloud."""
    if not isinstance(token, AwsFederatedToken):
        raise ConfigurationError(
            f"{warehouse} logs in with temporary AWS credentials, but the task's identity connection gave a "
            f"token of {token.identity.issuer}; use an `idbt_aws` identity connection (docs/connections/aws.md)"
        )
    return token.credentials


def _client(service: str, creds: AwsSessionCredentials, region: str | None, endpoint_url: str | None) -> Any:
    botocore = load_botocore()
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    try:
        return botocore.session.Session().create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key.reveal(),
            aws_session_token=creds.session_token.reveal(),
            # Our retries (with_retries) honour Retry-After and give up with a retryable error.
            config=Config(connect_timeout=TIMEOUT, read_timeout=TIMEOUT, retries={"total_max_attempts": 1}),
        )
    except NoRegionError:
        raise ConfigurationError(f"{service}: give `region` (the AWS region of the database)") from None


def _call(
    what: str, target: str, call: Callable[[], Mapping[str, Any]], secrets: Sequence[str], fix: str, retry: RetryPolicy
) -> Mapping[str, Any]:
    """One AWS call with bounded retries: denials fail at once, throttling and 5xx are retried, then retryable."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    def once() -> tuple[Any, str | None, float | None]:
        in_aws_call.active = True  # botocore's DEBUG records (signed headers, the answer) are dropped meanwhile
        try:
            return call(), None, None
        except ClientError as exc:
            code, status, message, headers = aws_error_of(exc.response, tuple(secrets))
            if status >= 500 or status == 429 or code in TRANSIENT:
                return None, code or f"HTTP {status}", parse_retry_after(headers.get("retry-after"))
            if code in DENIED_CODES or status == 403:
                raise CredentialRejected(f"{what} for {target} was denied ({code}: {message}); {fix}") from None
            raise ConfigurationError(f"{what} for {target} failed ({code}: {message})") from None
        except (ConnectionError, HTTPClientError) as exc:
            return None, f"{type(exc).__name__}: cannot reach the AWS endpoint", None
        except BotoCoreError as exc:
            raise ConfigurationError(
                f"{what} for {target}: botocore could not call AWS ({type(exc).__name__})"
            ) from None
        finally:
            in_aws_call.active = False

    answer: Mapping[str, Any] = with_retries(target, what, retry, once)
    return answer


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def redshift_cluster_login(
    creds: AwsSessionCredentials,
    *,
    cluster_identifier: str,
    db_user: str,
    db_name: str | None = None,
    db_groups: Sequence[str] = (),
    auto_create: bool = False,
    duration_seconds: int = 900,
    region: str | None = None,
    endpoint_url: str | None = None,
    retry: RetryPolicy | None = None,
) -> DatabaseLogin:
    """``redshift:GetClusterCredentials``: a database password for ``db_user`` (returned as ``IAM:<db_user>``)."""
    client = _client("redshift", creds, region, endpoint_url)
    params: dict[str, Any] = {
        "ClusterIdentifier": cluster_identifier,
        "DbUser": db_user,
        "AutoCreate": bool(auto_create),
        "DurationSeconds": int(duration_seconds),
    }
    if db_name:
        params["DbName"] = db_name
    if db_groups:
        params["DbGroups"] = list(db_groups)
    answer = _call(
        "Redshift GetClusterCredentials",
        f"cluster `{cluster_identifier}`",
        lambda: client.get_cluster_credentials(**params),
        creds.secrets(),
        f"allow redshift:GetClusterCredentials on dbuser:{cluster_identifier}/{db_user} (and redshift:JoinGroup "
        "for db_groups, redshift:CreateClusterUser for auto_create) in the role's policy",
        retry or RetryPolicy(),
    )
    return DatabaseLogin(
        user=str(answer["DbUser"]),
        password=Secret(str(answer["DbPassword"]), "Redshift database password"),
        expires_at=_aware(answer["Expiration"]),
    )


def redshift_serverless_login(
    creds: AwsSessionCredentials,
    *,
    workgroup_name: str,
    db_name: str | None = None,
    duration_seconds: int = 900,
    region: str | None = None,
    endpoint_url: str | None = None,
    retry: RetryPolicy | None = None,
) -> DatabaseLogin:
    """``redshift-serverless:GetCredentials``: the user is the IAM identity's own (``IAMR:<role>``)."""
    client = _client("redshift-serverless", creds, region, endpoint_url)
    params: dict[str, Any] = {"workgroupName": workgroup_name, "durationSeconds": int(duration_seconds)}
    if db_name:
        params["dbName"] = db_name
    answer = _call(
        "Redshift Serverless GetCredentials",
        f"workgroup `{workgroup_name}`",
        lambda: client.get_credentials(**params),
        creds.secrets(),
        "allow redshift-serverless:GetCredentials on the workgroup in the role's policy",
        retry or RetryPolicy(),
    )
    return DatabaseLogin(
        user=str(answer["dbUser"]),
        password=Secret(str(answer["dbPassword"]), "Redshift Serverless database password"),
        expires_at=_aware(answer["expiration"]),
    )


def rds_auth_token(
    creds: AwsSessionCredentials, *, host: str, port: int, user: str, region: str | None = None
) -> DatabaseLogin:
    """An RDS/Aurora IAM authentication token for ``user``: a SigV4 pre-signed ``connect`` URL, signed locally.

    The server checks it against ``rds-db:connect`` on ``dbuser:<resource id>/<user>``; it is valid for 15
    minutes (a connection opened in that time stays open) and never longer than the session credentials.
    """
    client = _client("rds", creds, region, None)
    in_aws_call.active = True  # botocore.auth logs the canonical request, session token included, at DEBUG
    try:
        value = client.generate_db_auth_token(DBHostname=host, Port=int(port), DBUsername=user, Region=region)
    finally:
        in_aws_call.active = False
    expires = min(datetime.now(UTC) + RDS_TOKEN_LIFETIME, creds.expires_at)
    return DatabaseLogin(user=user, password=Secret(str(value), "RDS IAM authentication token"), expires_at=expires)
