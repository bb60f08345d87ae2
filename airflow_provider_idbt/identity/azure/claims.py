"""Entra access tokens: verified against the tenant's keys, then read into an identity of non-personal claims."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from airflow_provider_idbt.errors import ConfigurationError, TokenVerificationError
from airflow_provider_idbt.identity.azure.clouds import AzureCloud
from airflow_provider_idbt.identity.claims import (
    VerificationPolicy,
    checked_header,
    decode_verified,
    jwks_client,
    signing_key,
)
from airflow_provider_idbt.identity.fields import checked_url
from airflow_provider_idbt.identity.token import IdentityContext, fingerprint
from airflow_provider_idbt.identity.transport import HttpClient, json_object

GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
METADATA_TTL_SECONDS = 3600.0


@dataclass(frozen=True)
class TenantMetadata:
    """What verifying the tenant's tokens needs from its discovery document."""

    issuer: str  # the v2.0 issuer, tenant id filled in
    jwks_uri: str
    tenant_guid: str | None  # the directory id, even when the connection names the tenant by domain


_metadata: dict[tuple[str, str | None], tuple[float, TenantMetadata]] = {}
_metadata_lock = threading.Lock()


def clear_tenant_metadata() -> None:
    with _metadata_lock:
        _metadata.clear()


def tenant_metadata(authority: str, http: HttpClient) -> TenantMetadata:
    """The tenant's v2.0 discovery document (cached an hour per process).

    It is the document msal reads too, but msal keeps only the endpoints it needs and not the jwks_uri, so it is
    fetched here once more for verification.
    """
    key = (authority, http.ca_bundle)
    with _metadata_lock:
        cached = _metadata.get(key)
    if cached and time.monotonic() - cached[0] < METADATA_TTL_SECONDS:
        return cached[1]
    url = f"{authority}/v2.0/.well-known/openid-configuration"
    response = http.send("GET", url, "Entra ID metadata", headers={"Accept": "application/json"})
    doc = json_object(response)
    if response.status_code != 200 or not doc.get("jwks_uri") or not doc.get("issuer"):
        raise ConfigurationError(
            f"connection `{http.conn_id}`: {url} answered HTTP {response.status_code} without a discovery "
            "document; check tenantId and authority_host"
        )

    def bad(problem: str, fix: str) -> ConfigurationError:
        return ConfigurationError(f"connection `{http.conn_id}`: the tenant's jwks_uri {problem}; {fix}")

    tenant = authority.rsplit("/", 1)[-1]
    issuer = str(doc["issuer"]).replace("{tenantid}", tenant)
    found = GUID.search(issuer)
    metadata = TenantMetadata(
        issuer=issuer,
        jwks_uri=checked_url(str(doc["jwks_uri"]), bad),
        tenant_guid=found.group(0).lower() if found else (tenant.lower() if GUID.fullmatch(tenant) else None),
    )
    with _metadata_lock:
        _metadata[key] = (time.monotonic(), metadata)
    return metadata


@dataclass(frozen=True)
class AzureClaims:
    """The Entra-specific facts of a verified token. ``upn`` is personal: kept here, never in the identity."""

    object_id: str | None
    app_id: str | None
    tenant_id: str | None
    roles: tuple[str, ...]
    version: str | None
    upn: str | None = field(default=None, repr=False)


def accepted_issuers(metadata: TenantMetadata, cloud: AzureCloud) -> tuple[str, ...]:
    """v2.0 tokens carry the discovery document's issuer; v1.0 tokens (most first-party resources) the STS one."""
    issuers = [metadata.issuer]
    if metadata.tenant_guid:
        issuers.append(f"https://{cloud.v1_issuer_host}/{metadata.tenant_guid}/")
    return tuple(issuers)


def verify_access_token(
    token: str,
    *,
    metadata: TenantMetadata,
    cloud: AzureCloud,
    audiences: tuple[str, ...],
    ca_bundle: str | None,
    timeout: float,
) -> dict[str, Any]:
    """Check the token's signature against the tenant's keys, its issuer, audience, times and tenant."""
    issuers = accepted_issuers(metadata, cloud)
    header = checked_header(token, VerificationPolicy(issuer=issuers[0]))
    try:
        issuer = str(jwt.decode(token, options={"verify_signature": False}).get("iss") or "")
    except jwt.InvalidTokenError as exc:
        raise TokenVerificationError(f"the token is not a readable JWT ({type(exc).__name__})") from None
    if issuer not in issuers:
        raise TokenVerificationError(f"the token was issued by {issuer!r}, not by {' or '.join(issuers)}")
    policy = VerificationPolicy(issuer=issuer, audience=audiences)
    client = jwks_client(metadata.jwks_uri, ca_bundle=ca_bundle, timeout=timeout)
    kid = header.get("kid")
    claims = decode_verified(token, signing_key(client, kid if isinstance(kid, str) else None), policy)
    tid = claims.get("tid")
    if tid and metadata.tenant_guid and str(tid).lower() != metadata.tenant_guid:
        raise TokenVerificationError(f"the token is for tenant {tid}, not {metadata.tenant_guid}")
    return claims


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()


def identity_from_entra_claims(
    claims: Mapping[str, Any], token: str, *, cloud: AzureCloud, declared_groups: tuple[str, ...]
) -> tuple[IdentityContext, AzureClaims]:
    """The identity (subject = object id, principal = application id) and the Entra facts behind it.

    App `roles` are the groups: Entra drops the `groups` claim past ~200 groups (an "overage"), and service
    principals rarely carry one, so the connection's declared groups are the fallback, never the groups claim.
    """
    azure = AzureClaims(
        object_id=_first(claims, "oid", "sub"),
        app_id=_first(claims, "appid", "azp", "client_id"),
        tenant_id=_first(claims, "tid"),
        roles=tuple(dict.fromkeys(_strings(claims.get("roles")))),
        version=_first(claims, "ver"),
        upn=_first(claims, "upn"),
    )
    subject = azure.object_id or azure.app_id
    if not subject:
        raise TokenVerificationError("the token names no object id (oid/sub) and no application (appid/azp)")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise TokenVerificationError("the token has no exp claim")
    # Only non-personal attributes (IdentityContext's allowlist): the tenant and the cloud, never upn or names.
    attributes = {"azure_cloud": cloud.name}
    if azure.tenant_id:
        attributes["tid"] = azure.tenant_id
    identity = IdentityContext(
        issuer=str(claims["iss"]),
        subject=subject,
        expires_at=datetime.fromtimestamp(float(exp), UTC),
        fingerprint=fingerprint(token),
        principal=azure.app_id,
        groups=azure.roles or declared_groups,
        audience=_strings(claims.get("aud")),
        attributes=attributes,
    )
    return identity, azure


def _first(claims: Mapping[str, Any], *names: str) -> str | None:
    return next((str(claims[name]) for name in names if claims.get(name)), None)
