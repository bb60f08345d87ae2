"""An `idbt_azure` connection, validated: tenant, client, cloud and authority, scopes, and its one credential."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.azure.certificate import AzureCertificate, load_certificate
from airflow_provider_idbt.identity.azure.clouds import (
    CLOUDS,
    DEFAULT_CLOUD,
    WAREHOUSES,
    AzureCloud,
    default_scope,
)
from airflow_provider_idbt.identity.job_binding import JOB_BINDING_KEYS, JobBinding
from airflow_provider_idbt.identity.secret import Secret
from airflow_provider_idbt.identity.sources import SOURCE_KEYS, SubjectTokenSource, source_from_extra
from airflow_provider_idbt.identity.subject_check import CHECK_KEYS, SubjectTokenCheck

CREDENTIALS = ("federated", "certificate", "client_secret")
FLOWS = "client credentials with a federated assertion, a certificate or a client secret"
# The variables azure-identity's WorkloadIdentityCredential reads (set on AKS pods by the workload identity webhook).
ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_TENANT_ID = "AZURE_TENANT_ID"
ENV_AUTHORITY_HOST = "AZURE_AUTHORITY_HOST"
# Tenant extras as the Azure provider spells them: AzureBaseHook, MS Graph hook, DefaultAzureCredential.
TENANT_KEYS = ("tenantId", "tenant_id", "workload_identity_tenant_id")
# Multi-tenant authorities are for signing users in; an application token needs its home tenant.
USER_TENANTS = frozenset({"common", "organizations", "consumers"})
TENANT = re.compile(r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$")
KNOWN_KEYS = frozenset(
    {
        *TENANT_KEYS,
        "client_id",
        "cloud_environment",
        "authority_host",
        "scopes",
        "warehouse",
        "resource",
        "audience",
        "groups",
        "credential",
        "certificate_path",
        "timeout",
        "ca_bundle",
        # Read by the operator's permission check (hooks/role_mapping.py), not by the exchanger.
        "role_mapping",
        # Read by the operator before any token is minted (identity/job_binding.py).
        *JOB_BINDING_KEYS,
        *SOURCE_KEYS,
    }
)
_SOURCE_CHOICE_KEYS = SOURCE_KEYS - CHECK_KEYS


@dataclass(frozen=True)
class AzureIdentityConfig:
    """One Entra ID application and how it proves itself; ``repr`` never shows the secret or the key."""

    conn_id: str
    tenant_id: str
    client_id: str
    cloud: AzureCloud
    authority_host: str  # https://host[:port], no path
    scopes: tuple[str, ...]
    credential: str  # one of CREDENTIALS
    client_secret: Secret | None = field(default=None, repr=False)
    certificate: AzureCertificate | None = field(default=None, repr=False)
    subject_source: SubjectTokenSource | None = None
    subject_check: SubjectTokenCheck | None = None
    # `aud` values accepted besides the scopes' resources (v2.0 tokens of custom APIs carry the API's client id).
    audiences: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    timeout: float = 10.0
    ca_bundle: str | None = None

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def secret_fingerprint(self) -> str:
        """Tells credentials apart (a rotated secret needs a new msal application) without revealing them."""
        from airflow_provider_idbt.identity.token import fingerprint

        if self.client_secret is not None:
            return fingerprint(self.client_secret.reveal())
        if self.certificate is not None:
            return self.certificate.thumbprint
        return self.subject_source.description if self.subject_source is not None else ""

    @property
    def cache_key(self) -> tuple[str, ...]:
        """What makes two tokens of this connection interchangeable (see identity.cache)."""
        return (self.conn_id, self.authority, self.client_id, " ".join(self.scopes), self.credential)

    @classmethod
    def from_connection(
        cls, conn_id: str, login: str | None, password: str | None, extra: Mapping[str, Any]
    ) -> AzureIdentityConfig:
        """Validate Airflow connection fields; every problem is a :class:`ConnectionFieldError`."""
        fields.refuse_interactive(conn_id, extra, FLOWS)
        fields.refuse_keys(
            conn_id,
            extra,
            ("client_secret", "certificate_data", "private_key"),
            "must not be in extra",
            "put it in the password field, which Airflow encrypts",
        )
        fields.warn_unknown(conn_id, extra, KNOWN_KEYS)
        JobBinding.from_extra(conn_id, extra)  # a bad binding is a bad connection, found by `idbt doctor` too

        cloud = _cloud(conn_id, extra)
        tenant_id = _tenant(conn_id, extra)
        client_id = (login or "").strip() or fields.text(extra, "client_id") or os.environ.get(ENV_CLIENT_ID, "")
        if not client_id:
            raise ConnectionFieldError(
                conn_id,
                "login",
                f"is missing (and {ENV_CLIENT_ID} is not set)",
                "set it to the application (client) id of the app registration",
            )
        timeout = fields.timeout(conn_id, extra)
        credential = _credential(conn_id, password, extra)
        secret = certificate = source = check = None
        if credential == "client_secret":
            secret = Secret(password or "", "client secret")
        elif credential == "certificate":
            certificate = load_certificate(conn_id, password, fields.text(extra, "certificate_path"))
        else:
            source = source_from_extra(
                conn_id, extra, timeout=timeout, default="azure_federated", default_audience=cloud.federation_audience
            )
            check = SubjectTokenCheck.from_extra(conn_id, extra, default_audience=cloud.federation_audience)
        return cls(
            conn_id=conn_id,
            tenant_id=tenant_id,
            client_id=client_id,
            cloud=cloud,
            authority_host=_authority_host(conn_id, extra, cloud),
            scopes=_scopes(conn_id, extra, cloud),
            credential=credential,
            client_secret=secret,
            certificate=certificate,
            subject_source=source,
            subject_check=check,
            audiences=fields.words(conn_id, extra, "audience", separators=", "),
            groups=fields.declared_groups(conn_id, extra),
            timeout=timeout,
            ca_bundle=fields.ca_bundle(conn_id, extra),
        )


def _cloud(conn_id: str, extra: Mapping[str, Any]) -> AzureCloud:
    name = fields.text(extra, "cloud_environment") or DEFAULT_CLOUD
    if name not in CLOUDS:
        raise ConnectionFieldError(conn_id, "cloud_environment", f"is {name!r}", f"use one of {', '.join(CLOUDS)}")
    return CLOUDS[name]


def _tenant(conn_id: str, extra: Mapping[str, Any]) -> str:
    given = next((value for key in TENANT_KEYS if (value := fields.text(extra, key))), None)
    tenant = given or os.environ.get(ENV_TENANT_ID, "").strip()
    if not tenant:
        raise ConnectionFieldError(
            conn_id, "tenantId", f"is missing (and {ENV_TENANT_ID} is not set)", "set it to the directory (tenant) id"
        )
    if tenant.lower() in USER_TENANTS or not TENANT.match(tenant):
        raise ConnectionFieldError(
            conn_id,
            "tenantId",
            f"is {tenant!r}",
            "give the app's own tenant: its directory id (a GUID) or a verified domain; "
            "common/organizations/consumers are for user sign-in",
        )
    return tenant


def _authority_host(conn_id: str, extra: Mapping[str, Any], cloud: AzureCloud) -> str:
    """The login host: the `authority_host` extra, else the cloud's, else AZURE_AUTHORITY_HOST (as azure-identity)."""
    value = fields.text(extra, "authority_host")
    if value is None and "cloud_environment" not in extra:
        value = os.environ.get(ENV_AUTHORITY_HOST) or None
    if value is None:
        return f"https://{cloud.authority_host}"
    url = value if "://" in value else f"https://{value}"
    parts = urlsplit(url)
    # msal only talks https to an authority, even on loopback.
    if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query or parts.fragment:
        raise ConnectionFieldError(
            conn_id,
            "authority_host",
            f"is {value!r}",
            "give an https host without a path, e.g. https://login.microsoftonline.us (the tenant is added)",
        )
    return f"https://{parts.netloc}"


def _scopes(conn_id: str, extra: Mapping[str, Any], cloud: AzureCloud) -> tuple[str, ...]:
    scopes = fields.words(conn_id, extra, "scopes", separators=", ")
    warehouse = fields.text(extra, "warehouse")
    if scopes and warehouse:
        raise ConnectionFieldError(conn_id, "warehouse", "is set together with `scopes`", "keep only one of them")
    if scopes:
        return scopes
    if warehouse is None:
        raise ConnectionFieldError(
            conn_id,
            "scopes",
            "is missing",
            f"give the warehouse's scope (e.g. https://database.windows.net/.default) or `warehouse`: "
            f"one of {', '.join(WAREHOUSES)}",
        )
    if warehouse not in WAREHOUSES:
        raise ConnectionFieldError(conn_id, "warehouse", f"is {warehouse!r}", f"use one of {', '.join(WAREHOUSES)}")
    row = WAREHOUSES[warehouse]
    resource = cloud.resources[row] if row else fields.text(extra, "resource")
    if resource is None:
        raise ConnectionFieldError(
            conn_id,
            "resource",
            f"is missing for warehouse {warehouse}",
            "give the application ID URI of the app registration that represents it, e.g. api://<guid>",
        )
    return (default_scope(resource),)


def _credential(conn_id: str, password: str | None, extra: Mapping[str, Any]) -> str:
    """The one credential the connection gives; two at once are refused rather than guessed between."""
    password = password or None
    certificate_path = fields.text(extra, "certificate_path")
    is_pem = password is not None and password.lstrip().startswith("-----BEGIN")
    source_keys = sorted(key for key in _SOURCE_CHOICE_KEYS if fields.text(extra, key))
    chosen = fields.text(extra, "credential")
    if chosen is None:
        if certificate_path or is_pem:
            chosen = "certificate"
        else:
            chosen = "client_secret" if password else "federated"
    if chosen not in CREDENTIALS:
        raise ConnectionFieldError(conn_id, "credential", f"is {chosen!r}", f"use one of {', '.join(CREDENTIALS)}")
    if chosen == "client_secret" and (password is None or is_pem):
        raise ConnectionFieldError(conn_id, "password", "holds no client secret", "paste the secret's value there")
    if chosen == "certificate" and not (certificate_path or is_pem):
        raise ConnectionFieldError(
            conn_id, "certificate_path", "is missing", "give a PEM/PFX file, or paste the PEM into password"
        )
    clashes = {
        "federated": [
            name for name, given in (("password", password), ("certificate_path", certificate_path)) if given
        ],
        "certificate": source_keys + (["password"] if certificate_path and password else []),
        "client_secret": source_keys + (["certificate_path"] if certificate_path else []),
    }[chosen]
    if clashes:
        raise ConnectionFieldError(
            conn_id,
            clashes[0],
            f"is set, but the connection's credential is {chosen}",
            "give exactly one credential: a federated subject token (password empty), a certificate "
            "(certificate_path, or the PEM in password) or a client secret (password)",
        )
    return chosen
