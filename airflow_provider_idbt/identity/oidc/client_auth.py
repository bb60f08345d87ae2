"""Client authentication at the token endpoint: client secret (Basic or post) or a private_key_jwt assertion."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import jwt

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.discovery import ProviderMetadata
from airflow_provider_idbt.identity.secret import Secret

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
# Short-lived on purpose: an assertion is used once (the IdP keeps its jti), so a minute covers clock skew.
ASSERTION_LIFETIME_SECONDS = 60

# (form fields, Basic auth) to add to a token request.
Credentials = tuple[dict[str, str], tuple[str, str] | None]


@dataclass(frozen=True)
class ClientSecretAuth:
    """client_secret_basic or client_secret_post, whichever the IdP's discovery document allows."""

    client_id: str
    secret: Secret
    method: str = "client_secret"

    def credentials(self, metadata: ProviderMetadata) -> Credentials:
        if metadata.auth_method == "client_secret_post":
            return {"client_id": self.client_id, "client_secret": self.secret.reveal()}, None
        # RFC 6749 2.3.1: id and secret are form-encoded before they go into the Basic header.
        return {}, (quote_plus(self.client_id), quote_plus(self.secret.reveal()))

    def secrets(self) -> tuple[str, ...]:
        return (self.secret.reveal(),)


@dataclass(frozen=True)
class PrivateKeyJwtAuth:
    """RFC 7523 client assertion signed with the client's private key (Okta, Keycloak, Entra certificates)."""

    conn_id: str
    client_id: str
    private_key: Secret
    key_id: str | None = None
    algorithm: str = "RS256"
    method: str = "private_key_jwt"

    def assertion(self, audience: str) -> str:
        # Protocol glue: the claims RFC 7523 3 requires; pyjwt does the signing.
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        try:
            return jwt.encode(claims, self.private_key.reveal(), algorithm=self.algorithm, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            # The library's message may quote the key material: name only its type.
            raise ConnectionFieldError(
                self.conn_id,
                "password",
                f"does not hold a usable {self.algorithm} private key ({type(exc).__name__})",
                "paste the client's PEM private key (PKCS#8 or PKCS#1) matching assertion_alg",
            ) from None

    def credentials(self, metadata: ProviderMetadata) -> Credentials:
        # The token endpoint URL is the audience every IdP accepts (Okta requires it; RFC 7523 allows it).
        return {
            "client_id": self.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(metadata.token_endpoint),
        }, None

    def secrets(self) -> tuple[str, ...]:
        return (self.private_key.reveal(),)


ClientAuth = ClientSecretAuth | PrivateKeyJwtAuth
