"""Access-token verification: signature against the issuer's JWKS, then issuer, audience, time, algorithm."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from airflow_provider_idbt.errors import IdentityProviderUnavailable, TokenVerificationError
from airflow_provider_idbt.identity.token import IdentityContext, fingerprint

log = logging.getLogger(__name__)

# Asymmetric algorithms only: with HS* anyone holding the public JWKS could forge tokens; `none` is unsigned.
ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
DEFAULT_LEEWAY = timedelta(seconds=30)

# Claims naming the OAuth client a token was issued to: azp (OIDC), client_id (RFC 9068), appid (Entra v1).
PRINCIPAL_CLAIMS: tuple[str, ...] = ("azp", "client_id", "appid")
# Non-personal claims worth keeping with the identity; everything else (email, upn, name, ...) is dropped.
KEPT_ATTRIBUTES: tuple[str, ...] = ("tid", "idbt_dev")


@dataclass(frozen=True)
class VerificationPolicy:
    """What a token must satisfy besides a valid signature."""

    issuer: str
    audience: tuple[str, ...] = ()
    groups_claim: str = "groups"
    leeway: timedelta = DEFAULT_LEEWAY
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS


_clients: dict[tuple[str, str | None], PyJWKClient] = {}
_clients_lock = threading.Lock()


def ssl_context_for(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying TLS context; PyJWKClient uses urllib, which ignores REQUESTS_CA_BUNDLE."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()


def jwks_client(jwks_uri: str, *, ca_bundle: str | None = None, timeout: float = 10.0) -> PyJWKClient:
    """One JWKS client per (URI, CA bundle) per process, so keys are fetched once and shared by all tasks."""
    key = (jwks_uri, ca_bundle)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            context = ssl_context_for(ca_bundle) if jwks_uri.startswith("https://") else None
            client = PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=3600, timeout=timeout, ssl_context=context)
            _clients[key] = client
        return client


def _signing_keys(client: PyJWKClient, *, refresh: bool) -> list[PyJWK]:
    try:
        return client.get_signing_keys(refresh=refresh)
    except jwt.PyJWKClientConnectionError as exc:
        raise IdentityProviderUnavailable(f"could not fetch the signing keys from {client.uri}: {exc}") from exc
    except (jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
        raise TokenVerificationError(f"the signing keys at {client.uri} are unusable: {exc}") from exc


def _find_key(keys: Sequence[PyJWK], kid: str | None) -> PyJWK | None:
    if kid is None:
        # Without a kid the choice is only unambiguous when the issuer publishes a single key.
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.key_id == kid), None)


def signing_key(client: PyJWKClient, kid: str | None) -> PyJWK:
    """The key for ``kid``, refetching the JWKS once when the kid is unknown (the issuer rotated its keys)."""
    key = _find_key(_signing_keys(client, refresh=False), kid)
    if key is None:
        log.info("signing key %r not in the cached JWKS of %s; refetching once", kid, client.uri)
        key = _find_key(_signing_keys(client, refresh=True), kid)
    if key is None:
        raise TokenVerificationError(f"no signing key with kid {kid!r} is published at {client.uri}")
    return key


def _as_tuple(value: Any) -> tuple[str, ...]:
    """Claims such as aud, groups and scope come as a list or as one space-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, Iterable):
        return tuple(str(item) for item in value)
    return (str(value),)


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _timestamp(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    return datetime.fromtimestamp(float(value), UTC) if isinstance(value, int | float) else None


def identity_from_claims(
    claims: Mapping[str, Any],
    token: str,
    *,
    groups_claim: str = "groups",
    expires_at_fallback: datetime | None = None,
) -> IdentityContext:
    """Build the identity from verified claims, keeping only non-personal ones."""
    principal = next((str(claims[name]) for name in PRINCIPAL_CLAIMS if claims.get(name)), None)
    # Some issuers put no sub in client-credentials tokens; then the client itself is the subject.
    subject = str(claims["sub"]) if claims.get("sub") else principal
    if not subject:
        raise TokenVerificationError(
            "the token names no subject (no sub, azp, client_id or appid claim); "
            "configure the identity provider to issue RFC 9068 access tokens"
        )
    expires_at = _timestamp(claims, "exp") or expires_at_fallback
    if expires_at is None:
        raise TokenVerificationError("the token has no exp claim and the identity provider gave no expires_in")
    groups = _dedupe((*_as_tuple(claims.get(groups_claim)), *_as_tuple(claims.get("roles"))))
    attributes = {
        name: str(claims[name]).lower() if isinstance(claims[name], bool) else str(claims[name])
        for name in KEPT_ATTRIBUTES
        if name in claims
    }
    return IdentityContext(
        issuer=str(claims["iss"]),
        subject=subject,
        expires_at=expires_at,
        fingerprint=fingerprint(token),
        principal=principal,
        groups=groups,
        audience=_as_tuple(claims.get("aud")),
        attributes=attributes,
    )


def checked_header(token: str, policy: VerificationPolicy) -> dict[str, Any]:
    """The token's header, once its algorithm is on the allowlist (checked before any key is fetched)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenVerificationError(
            "the access token is not a JWT; the identity provider must issue JWT access tokens"
        ) from exc
    alg = header.get("alg")
    if alg not in policy.algorithms:
        raise TokenVerificationError(
            f"the token is signed with algorithm {alg!r}, which is not allowed; allowed: {', '.join(policy.algorithms)}"
        )
    return header


def decode_verified(token: str, key: PyJWK, policy: VerificationPolicy) -> dict[str, Any]:
    """Check signature, algorithm, issuer, audience and exp/iat/nbf; return the claims."""
    # Only the header's own (allowlisted) algorithm is accepted, and pyjwt refuses a key of another family.
    alg = checked_header(token, policy)["alg"]
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            issuer=policy.issuer,
            audience=list(policy.audience) or None,
            leeway=policy.leeway,
            options={"require": ["iss"], "verify_aud": bool(policy.audience)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenVerificationError("the token has expired (exp is in the past)") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenVerificationError(f"the token is not valid yet: {exc}; check the clocks of the worker") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenVerificationError(f"the token was not issued by {policy.issuer} (iss does not match)") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenVerificationError(
            f"the token is not for audience {', '.join(policy.audience)} (aud does not match)"
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenVerificationError("the token's signature does not verify against the issuer's key") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenVerificationError(f"the token is invalid: {exc}") from exc


class AccessTokenVerifier:
    """Verifies access tokens of one issuer and turns them into an :class:`IdentityContext`."""

    def __init__(
        self,
        policy: VerificationPolicy,
        jwks_uri: str,
        *,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.policy = policy
        self.jwks_uri = jwks_uri
        self._client = jwks_client(jwks_uri, ca_bundle=ca_bundle, timeout=timeout)

    def verify(self, token: str, *, expires_at_fallback: datetime | None = None) -> IdentityContext:
        """Verify ``token`` and return who it identifies; raise :class:`TokenVerificationError` otherwise."""
        kid = checked_header(token, self.policy).get("kid")
        key = signing_key(self._client, kid if isinstance(kid, str) else None)
        claims = decode_verified(token, key, self.policy)
        return identity_from_claims(
            claims, token, groups_claim=self.policy.groups_claim, expires_at_fallback=expires_at_fallback
        )
