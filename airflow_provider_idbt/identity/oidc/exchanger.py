"""Generic OIDC exchanger: client credentials or RFC 8693 token exchange, then a verified FederatedToken."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from airflow_provider_idbt.errors import (
    ConfigurationError,
    CredentialRejected,
    DevTokenRefused,
    TokenVerificationError,
)
from airflow_provider_idbt.identity.claims import AccessTokenVerifier, VerificationPolicy
from airflow_provider_idbt.identity.discovery import (
    ProviderMetadata,
    discover,
)
from airflow_provider_idbt.identity.oidc.config import (
    TOKEN_EXCHANGE_GRANT,
    OidcClientConfig,
)
from airflow_provider_idbt.identity.sources import SubjectToken
from airflow_provider_idbt.identity.subject_check import checked_subject_token
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.identity.transport import HttpClient, RetryPolicy, json_object

log = logging.getLogger(__name__)

DEV_IDP_OPT_IN = "IDBT_ALLOW_DEV_IDP"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class OidcCredentialRejected(CredentialRejected):
    """The token endpoint refused the request; carries the IdP's own ``error`` and ``error_description``."""

    def __init__(self, message: str, *, error: str, error_description: str | None, status: int) -> None:
        self.error = error
        self.error_description = error_description
        self.status = status
        super().__init__(message)


_REJECTION_FIXES = {
    "invalid_client": "check the client id (login) and the client secret or private key (password) of the connection",
    "unauthorized_client": "allow this grant type for the client at the identity provider",
    "unsupported_grant_type": "enable this grant type at the identity provider",
    "invalid_scope": "request only scopes granted to this client (extra `scope`)",
    "invalid_target": "request an audience this client may use (extra `audience`)",
}
_GRANT_FIXES = {
    "client_credentials": "allow the client_credentials grant for this client at the identity provider",
    "token_exchange": (
        "check that the identity provider trusts the subject token's issuer and audience "
        "(extras subject_token_*), and that the token is current"
    ),
}


def _expiry_from(expires_in: Any) -> datetime | None:
    """Expiry from the response's expires_in: only used when the token itself carries no exp."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds > 0 else None


class OidcTokenExchanger:
    """Trades a connection's client credentials (and a subject token, for RFC 8693) for a verified token."""

    def __init__(self, config: OidcClientConfig, *, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.http = HttpClient(config.conn_id, config.timeout, config.ca_bundle, self.retry)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.config.conn_id!r}, issuer={self.config.issuer!r})"

    def discover(self) -> ProviderMetadata:
        """The issuer's OIDC discovery document, fetched once per issuer per process (for an hour)."""
        return discover(self.config.issuer, self.http)

    def _form(self, subject: SubjectToken | None) -> dict[str, str]:
        cfg = self.config
        if subject is None:
            data = {"grant_type": "client_credentials"}
        else:
            data = {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token": subject.value.reveal(),
                "subject_token_type": subject.token_type,
                "requested_token_type": ACCESS_TOKEN_TYPE,
            }
        if cfg.scope:
            data["scope"] = " ".join(cfg.scope)
        if cfg.audience:
            data[cfg.audience_param] = cfg.audience
        return data

    def _request_token(
        self, metadata: ProviderMetadata, subject: SubjectToken | None
    ) -> tuple[requests.Response, dict[str, Any]]:
        form, basic = self.config.client_auth.credentials(metadata)
        response = self.http.send(
            "POST",
            metadata.token_endpoint,
            "token endpoint",
            data=self._form(subject) | form,
            auth=basic,
            headers={"Accept": "application/json"},
        )
        return response, json_object(response)

    def _secrets(self, subject: SubjectToken | None) -> tuple[str, ...]:
        found = self.config.client_auth.secrets()
        return found if subject is None else (*found, subject.value.reveal())

    def _rejection(
        self, response: requests.Response, body: Mapping[str, Any], subject: SubjectToken | None
    ) -> Exception:
        cfg = self.config
        status = response.status_code
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")[:300] or None
        for secret in self._secrets(subject):
            if description and secret in description:
                description = description.replace(secret, "***")
        if error or status in (400, 401, 403):
            error = error or f"HTTP {status}"
            fix = _REJECTION_FIXES.get(error) or _GRANT_FIXES[cfg.grant]
            said = f"{error}: {description}" if description else error
            what = f"client `{cfg.client_id}`"
            if subject is not None:
                what += f" exchanging the subject token from {subject.origin}"
            return OidcCredentialRejected(
                f"connection `{cfg.conn_id}`: the identity provider at {cfg.issuer} refused {what} ({said}); {fix}",
                error=error,
                error_description=description,
                status=status,
            )
        return ConfigurationError(
            f"connection `{cfg.conn_id}`: the token endpoint {response.url} answered HTTP {status}; "
            "check that host is the issuer URL"
        )

    def _subject(self, refresh: bool = False) -> SubjectToken | None:
        source = self.config.subject_source
        if source is None:
            return None
        return checked_subject_token(self.http, source, self.config.subject_check, refresh=refresh)

    def fetch(self) -> FederatedToken:
        """Run discovery and the grant, verify the access token, and return it."""
        cfg = self.config
        metadata = self.discover()
        subject = self._subject()
        response, body = self._request_token(metadata, subject)
        if response.status_code != 200 and subject is not None and body.get("error") == "invalid_grant":
            # The subject token may have been rotated (new signing key, renewed file) since we read it: once more.
            fresh = self._subject(refresh=True)
            if fresh is not None and fresh.value != subject.value:
                log.info("connection `%s`: subject token rejected; retrying once with a re-read one", cfg.conn_id)
                subject = fresh
                response, body = self._request_token(metadata, subject)
        if response.status_code != 200:
            raise self._rejection(response, body, subject)
        return self._verified(metadata, body)

    def _verified(self, metadata: ProviderMetadata, body: Mapping[str, Any]) -> FederatedToken:
        cfg = self.config
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ConfigurationError(f"connection `{cfg.conn_id}`: the token endpoint answered without an access_token")
        verifier = AccessTokenVerifier(
            VerificationPolicy(
                issuer=metadata.issuer,
                audience=(cfg.audience,) if cfg.audience else (),
                groups_claim=cfg.groups_claim,
            ),
            metadata.jwks_uri,
            ca_bundle=cfg.ca_bundle,
            timeout=cfg.timeout,
        )
        try:
            identity = verifier.verify(access_token, expires_at_fallback=_expiry_from(body.get("expires_in")))
        except TokenVerificationError as exc:
            raise TokenVerificationError(
                f"connection `{cfg.conn_id}`: the access token from {metadata.issuer} failed verification: {exc}"
            ) from exc
        if identity.attributes.get("idbt_dev") == "true" and os.environ.get(DEV_IDP_OPT_IN) != "1":
            raise DevTokenRefused(
                f"connection `{cfg.conn_id}`: {metadata.issuer} is the idbt development identity provider "
                f"(its tokens carry `idbt_dev`); set {DEV_IDP_OPT_IN}=1 only on a development machine, "
                "or point the connection at a real identity provider"
            )
        if not identity.groups and cfg.groups:
            identity = replace(identity, groups=cfg.groups)
        token = FederatedToken(
            access_token,
            expires_at=identity.expires_at,
            identity=identity,
            audience=identity.audience,
            scope=tuple(str(body.get("scope") or "").split()) or cfg.scope,
            token_type=str(body.get("token_type") or "Bearer"),
        )
        log.info(
            "connection `%s`: token for %s from %s, %s, expires %s",
            cfg.conn_id,
            identity.subject,
            identity.issuer,
            identity.fingerprint,
            identity.expires_at.isoformat(timespec="seconds"),
        )
        return token


# The name before token exchange existed; kept so existing callers keep working.
OidcClientCredentialsExchanger = OidcTokenExchanger
