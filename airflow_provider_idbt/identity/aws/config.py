"""An `idbt_aws` connection, validated: the IAM role to assume with the worker's web identity, and where."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.job_binding import JOB_BINDING_KEYS, JobBinding
from airflow_provider_idbt.identity.sources import SOURCE_KEYS, SubjectTokenSource, source_from_extra
from airflow_provider_idbt.identity.subject_check import SubjectTokenCheck

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
# STS's own audience for web identity tokens (EKS IRSA and MWAA projected tokens carry it).
STS_AUDIENCE = "sts.amazonaws.com"
KNOWN_KEYS = frozenset(
    {
        "role_arn",
        "region_name",
        "sts_endpoint_url",
        "role_session_name",
        "duration_seconds",
        "groups",
        "timeout",
        "ca_bundle",
        # Read by the operator's permission check (hooks/role_mapping.py), not by the exchanger.
        "role_mapping",
        # Read by the operator before any token is minted (identity/job_binding.py).
        *JOB_BINDING_KEYS,
        *SOURCE_KEYS,
    }
)


@dataclass(frozen=True)
class AwsWebIdentityConfig:
    """One AssumeRoleWithWebIdentity connection. It holds no secret: the subject token is read at run time."""

    conn_id: str
    role_arn: str
    region: str
    subject_source: SubjectTokenSource
    session_name: str
    duration_seconds: int = 3600
    sts_endpoint_url: str | None = None
    groups: tuple[str, ...] = ()
    timeout: float = 10.0
    ca_bundle: str | None = None
    subject_check: SubjectTokenCheck | None = None

    @classmethod
    def from_connection(
        cls, conn_id: str, login: str | None, password: str | None, extra: Mapping[str, Any]
    ) -> AwsWebIdentityConfig:
        """Validate Airflow connection fields; every problem is a :class:`ConnectionFieldError`."""
        fields.refuse_interactive(conn_id, extra, "AssumeRoleWithWebIdentity")
        fields.refuse_login_password(
            conn_id,
            login,
            password,
            "holds an access key, which this connection type never uses",
            "remove it: the worker's web identity is exchanged for short-lived credentials",
        )
        fields.refuse_keys(
            conn_id,
            extra,
            ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"),
            "is a long-lived key",
            "remove it; give role_arn instead",
        )
        fields.warn_unknown(conn_id, extra, KNOWN_KEYS)
        JobBinding.from_extra(conn_id, extra)  # a bad binding is a bad connection, found by `idbt doctor` too

        role_arn = fields.text(extra, "role_arn")
        if role_arn is None or not ROLE_ARN.match(role_arn):
            raise ConnectionFieldError(
                conn_id,
                "role_arn",
                "is missing" if role_arn is None else f"is not an IAM role ARN ({role_arn!r})",
                "set it to the ARN of the role to assume, e.g. arn:aws:iam::123456789012:role/dbt-prod",
            )
        region = (
            fields.text(extra, "region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
        if not region:
            raise ConnectionFieldError(
                conn_id, "region_name", "is missing", "set it to the region whose STS endpoint to use, e.g. eu-west-1"
            )
        endpoint = fields.text(extra, "sts_endpoint_url")
        if endpoint is not None:
            fields.checked_url(endpoint, lambda p, f: ConnectionFieldError(conn_id, "sts_endpoint_url", p, f))
        session_name = fields.text(extra, "role_session_name") or f"idbt-{conn_id}"[:64]
        if not SESSION_NAME.match(session_name):
            raise ConnectionFieldError(
                conn_id, "role_session_name", f"is {session_name!r}", "use 2-64 letters, digits or +=,.@-_"
            )
        try:
            duration = int(extra.get("duration_seconds") or 3600)
        except (TypeError, ValueError):
            duration = 0
        if not 900 <= duration <= 43200:
            raise ConnectionFieldError(
                conn_id, "duration_seconds", "is out of range", "give 900-43200 (and at most the role's maximum)"
            )
        timeout = fields.timeout(conn_id, extra)
        if fields.text(extra, "subject_token_source") == "aws_outbound":
            raise ConnectionFieldError(
                conn_id,
                "subject_token_source",
                "is aws_outbound, whose tokens AWS does not accept for AssumeRoleWithWebIdentity",
                "use aws_web_identity or file here; aws_outbound is for idbt_google, idbt_azure and idbt_oidc",
            )
        source = source_from_extra(conn_id, extra, timeout=timeout, default="aws_web_identity")
        assert source is not None  # a default kind always yields a source or an error
        return cls(
            conn_id=conn_id,
            role_arn=role_arn,
            region=region,
            subject_source=source,
            session_name=session_name,
            duration_seconds=duration,
            sts_endpoint_url=endpoint,
            groups=fields.declared_groups(conn_id, extra),
            timeout=timeout,
            ca_bundle=fields.ca_bundle(conn_id, extra),
            subject_check=SubjectTokenCheck.from_extra(conn_id, extra, default_audience=STS_AUDIENCE),
        )

    @property
    def cache_key(self) -> tuple[str, ...]:
        return (self.conn_id, self.role_arn, self.session_name, self.region, self.subject_source.description)
