"""An `idbt_google` connection, validated: workload identity provider, service account, scopes and endpoints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.job_binding import JOB_BINDING_KEYS, JobBinding
from airflow_provider_idbt.identity.sources import (
    GCE_METADATA_URL,
    ID_TOKEN_TYPE,
    SOURCE_KEYS,
    SubjectTokenSource,
    source_from_extra,
)
from airflow_provider_idbt.identity.subject_check import SubjectTokenCheck

DEFAULT_UNIVERSE = "googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Where each Google endpoint is, per universe; a connection field overrides one row (Private Service Connect,
# a sovereign cloud, or a test server). Paths below these roots are the APIs' own and are appended in code.
DEFAULT_ENDPOINTS = {
    "sts": "https://sts.{universe}",
    "iam_credentials": "https://iamcredentials.{universe}",
    "metadata": GCE_METADATA_URL,
}
ENDPOINT_FIELDS = {"sts": "sts_endpoint", "iam_credentials": "iam_credentials_endpoint", "metadata": "gce_metadata_url"}
# federation: the worker's subject token through STS (then impersonation if a service account is given).
# environment: the worker's own Google credentials (Cloud Composer's service account) impersonating another one.
MODES = ("federation", "environment")
PROVIDER_AUDIENCE = re.compile(
    r"^//iam\.[a-z0-9.-]+/projects/(?P<project>\d+)/locations/global/workloadIdentityPools/(?P<pool>[a-z0-9-]{4,32})"
    r"/providers/(?P<provider>[a-z0-9-]{4,32})$"
)
SERVICE_ACCOUNT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$|^\d{21}$")
KNOWN_KEYS = frozenset(
    {
        "mode",
        "audience",
        # Not "service_account": Airflow masks every extra whose key contains that, which would hide the
        # identity from the task log and the events.
        "target_principal",
        "delegates",
        "scopes",
        "lifetime_seconds",
        "universe_domain",
        "project_id",
        "quota_project_id",
        "groups",
        "timeout",
        "ca_bundle",
        # Read by the operator's permission check (hooks/role_mapping.py), not by the exchanger.
        "role_mapping",
        # Read by the operator before any token is minted (identity/job_binding.py).
        *JOB_BINDING_KEYS,
        *ENDPOINT_FIELDS.values(),
        *SOURCE_KEYS,
    }
)


@dataclass(frozen=True)
class GoogleEndpoints:
    """Roots of the three Google services a connection talks to (no trailing slash)."""

    sts: str
    iam_credentials: str
    metadata: str

    @property
    def sts_token_url(self) -> str:
        return f"{self.sts}/v1/token"

    def service_account_url(self, email: str, method: str) -> str:
        """An IAM Credentials method URL (generateAccessToken, generateIdToken) for one service account."""
        return f"{self.iam_credentials}/v1/projects/-/serviceAccounts/{email}:{method}"


def _problem(conn_id: str, field: str) -> fields.Problem:
    return lambda problem, fix: ConnectionFieldError(conn_id, field, problem, fix)


def _endpoints(conn_id: str, extra: Mapping[str, Any], universe: str) -> GoogleEndpoints:
    roots: dict[str, str] = {}
    for name, default in DEFAULT_ENDPOINTS.items():
        field = ENDPOINT_FIELDS[name]
        value = fields.text(extra, field)
        if value is None:
            roots[name] = default.format(universe=universe)
            continue
        if name != "metadata":  # the metadata server is plain http by design; sources.py checks that field
            fields.checked_url(value, _problem(conn_id, field))
        roots[name] = value.rstrip("/")
    return GoogleEndpoints(**roots)


def _service_account(conn_id: str, value: str | None, field: str) -> str | None:
    if value is not None and not SERVICE_ACCOUNT.match(value):
        raise ConnectionFieldError(
            conn_id,
            field,
            f"is {value!r}",
            "give a service account email, e.g. dbt-prod@my-project.iam.gserviceaccount.com",
        )
    return value


@dataclass(frozen=True)
class GoogleFederationConfig:
    """One `idbt_google` connection. It holds no secret: subject tokens and credentials are read at run time."""

    conn_id: str
    mode: str
    endpoints: GoogleEndpoints
    audience: str | None = None  # the workload identity provider's full resource name (mode federation)
    subject_source: SubjectTokenSource | None = None
    service_account: str | None = None
    delegates: tuple[str, ...] = ()
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    lifetime_seconds: int = 3600
    universe_domain: str = DEFAULT_UNIVERSE
    project_id: str | None = None
    quota_project_id: str | None = None
    groups: tuple[str, ...] = ()
    timeout: float = 10.0
    ca_bundle: str | None = None
    subject_check: SubjectTokenCheck | None = None

    @classmethod
    def from_connection(
        cls, conn_id: str, login: str | None, password: str | None, extra: Mapping[str, Any]
    ) -> GoogleFederationConfig:
        """Validate Airflow connection fields; every problem is a :class:`ConnectionFieldError`."""
        fields.refuse_interactive(conn_id, extra, "workload identity federation")
        fields.refuse_login_password(
            conn_id,
            login,
            password,
            "is set, but this connection type stores no credential",
            "remove it",
        )
        fields.refuse_keys(
            conn_id,
            extra,
            ("keyfile_dict", "key_path", "private_key", "credential_config_file"),
            "is a long-lived key or a credential file",
            "remove it; give `audience` instead",
        )
        fields.warn_unknown(conn_id, extra, KNOWN_KEYS)
        JobBinding.from_extra(conn_id, extra)  # a bad binding is a bad connection, found by `idbt doctor` too

        mode = fields.text(extra, "mode") or "federation"
        if mode not in MODES:
            raise ConnectionFieldError(conn_id, "mode", f"is {mode!r}", f"set it to one of {', '.join(MODES)}")
        universe = (fields.text(extra, "universe_domain") or DEFAULT_UNIVERSE).lower()
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", universe):
            raise ConnectionFieldError(
                conn_id, "universe_domain", f"is {universe!r}", "give a domain, e.g. googleapis.com"
            )
        service_account = _service_account(conn_id, fields.text(extra, "target_principal"), "target_principal")
        delegates = tuple(
            _service_account(conn_id, d, "delegates") or d
            for d in fields.words(conn_id, extra, "delegates", separators=", ")
        )
        if delegates and service_account is None:
            raise ConnectionFieldError(conn_id, "delegates", "is set without `target_principal`", "set both or neither")
        timeout = fields.timeout(conn_id, extra)
        audience = fields.text(extra, "audience")
        source = None
        if mode == "federation":
            if audience is None or not PROVIDER_AUDIENCE.match(audience):
                raise ConnectionFieldError(
                    conn_id,
                    "audience",
                    "is missing" if audience is None else f"is not a workload identity provider ({audience!r})",
                    "set it to the provider's full resource name, //iam.googleapis.com/projects/<number>/locations/"
                    "global/workloadIdentityPools/<pool>/providers/<provider>",
                )
            source = source_from_extra(
                conn_id, extra, timeout=timeout, default_audience=_default_subject_audience(audience)
            )
            if source is None:
                raise ConnectionFieldError(
                    conn_id,
                    "subject_token_source",
                    "is missing",
                    "set it to `file` (+ subject_token_file), `gce_metadata` (Cloud Composer, GKE) or "
                    "`aws_outbound` (MWAA, any AWS role)",
                )
        elif service_account is None:
            raise ConnectionFieldError(
                conn_id, "target_principal", "is missing", "mode `environment` impersonates it: give its email"
            )
        try:
            lifetime = int(extra.get("lifetime_seconds") or 3600)
        except (TypeError, ValueError):
            lifetime = 0
        # Above 3600 s needs the organisation policy constraints/iam.allowServiceAccountCredentialLifetimeExtension.
        if not 600 <= lifetime <= 43200:
            raise ConnectionFieldError(conn_id, "lifetime_seconds", "is out of range", "give 600-3600 (up to 43200)")
        return cls(
            conn_id=conn_id,
            mode=mode,
            endpoints=_endpoints(conn_id, extra, universe),
            audience=audience,
            subject_source=source,
            service_account=service_account,
            delegates=delegates,
            scopes=fields.words(conn_id, extra, "scopes", separators=", ") or (CLOUD_PLATFORM_SCOPE,),
            lifetime_seconds=lifetime,
            universe_domain=universe,
            project_id=fields.text(extra, "project_id"),
            quota_project_id=fields.text(extra, "quota_project_id"),
            groups=fields.declared_groups(conn_id, extra),
            timeout=timeout,
            ca_bundle=fields.ca_bundle(conn_id, extra),
            subject_check=SubjectTokenCheck.from_extra(
                conn_id, extra, default_audience=_default_subject_audience(audience)
            ),
        )

    @property
    def subject_token_type(self) -> str | None:
        """What STS is told the subject token is: an OIDC ID token from the metadata server, else a JWT."""
        if self.subject_source is None:
            return None
        return getattr(self.subject_source, "token_type", ID_TOKEN_TYPE)

    @property
    def federated_principal(self) -> str | None:
        """The pool's principal prefix, ``principal://iam.googleapis.com/projects/N/.../workloadIdentityPools/P``."""
        if self.audience is None:
            return None
        return "principal:" + self.audience.rsplit("/providers/", 1)[0]

    @property
    def cache_key(self) -> tuple[str, ...]:
        source = self.subject_source.description if self.subject_source else "environment"
        return (
            self.conn_id,
            self.mode,
            self.audience or "",
            self.service_account or "",
            ",".join(self.delegates),
            " ".join(self.scopes),
            self.endpoints.sts,
            self.endpoints.iam_credentials,
            source,
        )


def _default_subject_audience(audience: str | None) -> str | None:
    # A provider's default allowed audience is its resource name as an https URL.
    return None if audience is None else "https:" + audience
