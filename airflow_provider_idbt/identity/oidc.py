"""Generic OIDC client-credentials exchange: connection fields to a validated config to a verified token."""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlsplit

import requests

from airflow_provider_idbt.errors import (
    ConfigurationError,
    ConnectionFieldError,
    CredentialRejected,
    DevTokenRefused,
    IdentityProviderUnavailable,
    TokenVerificationError,
)
from airflow_provider_idbt.identity.claims import AccessTokenVerifier, VerificationPolicy
from airflow_provider_idbt.identity.token import FederatedToken

log = logging.getLogger(__name__)

DEV_IDP_OPT_IN = "IDBT_ALLOW_DEV_IDP"
DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TTL_SECONDS = 3600.0
AUDIENCE_PARAMS = ("audience", "resource")
# Keys of interactive flows: a scheduled task has no browser or user, so such a connection is a mistake.
INTERACTIVE_KEYS = frozenset(
    {
        "redirect_uri",
        "response_type",
        "code",
        "code_verifier",
        "code_challenge",
        "device_code",
        "username",
        "user_password",
        "refresh_token",
        "prompt",
        "login_hint",
        "authorization_endpoint",
    }
)
KNOWN_KEYS = frozenset(
    {"issuer", "client_id", "audience", "audience_param", "scope", "groups_claim", "timeout", "ca_bundle"}
)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def is_loopback(hostname: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only places plain http cannot be read by others."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


Problem = Callable[[str, str], Exception]


def _checked_url(url: str, problem: Problem) -> str:
    """Return ``url`` if it is http(s) with a host and https unless on loopback; else call ``problem``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem("is not a URL", "give the full URL, starting with https://")
    if parts.query or parts.fragment:
        raise problem("has a query or fragment", "give the issuer URL without ?query or #fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise problem(
            "uses plain http on a non-loopback host",
            "use https (plain http is only allowed on 127.0.0.1, ::1 or localhost)",
        )
    return url


def _text(extra: Mapping[str, Any], key: str) -> str | None:
    value = extra.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


@dataclass(frozen=True)
class OidcClientConfig:
    """One OIDC client-credentials connection, validated. ``repr`` never shows the client secret."""

    conn_id: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    audience: str | None = None
    scope: tuple[str, ...] = ()
    groups_claim: str = "groups"
    timeout: float = 10.0
    ca_bundle: str | None = None
    # Auth0 and Okta read `audience`; RFC 8707 servers (ADFS, Entra v1) read `resource`.
    audience_param: str = "audience"

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
    ) -> OidcClientConfig:
        """Validate Airflow connection fields; every problem is a :class:`ConnectionFieldError`."""

        def problem_in(name: str) -> Problem:
            return lambda problem, fix: ConnectionFieldError(conn_id, name, problem, fix)

        interactive = sorted(INTERACTIVE_KEYS & set(extra))
        if interactive:
            raise ConnectionFieldError(
                conn_id,
                interactive[0],
                "belongs to an interactive sign-in flow",
                "remove it: scheduled tasks use the client-credentials flow (client id in login, secret in password)",
            )
        if _text(extra, "grant_type") not in (None, "client_credentials"):
            raise ConnectionFieldError(
                conn_id, "grant_type", "must be client_credentials", "remove it or set it to client_credentials"
            )
        if "client_secret" in extra:
            raise ConnectionFieldError(
                conn_id,
                "client_secret",
                "must not be in extra",
                "move the secret to the password field, which Airflow encrypts and masks",
            )
        unknown = sorted(set(extra) - KNOWN_KEYS - {"grant_type"})
        if unknown:
            log.warning("connection `%s`: ignoring unknown extra keys %s", conn_id, ", ".join(unknown))

        issuer = _text(extra, "issuer") or (host or "").strip()
        if not issuer:
            raise ConnectionFieldError(
                conn_id, "host", "is missing", "set it to the issuer URL (the `iss` of the IdP's tokens)"
            )
        _checked_url(issuer, problem_in("host"))

        client_id = (login or "").strip() or _text(extra, "client_id")
        if not client_id:
            raise ConnectionFieldError(
                conn_id, "login", "is missing", "set it to the client id registered at the identity provider"
            )
        if not password:
            raise ConnectionFieldError(
                conn_id, "password", "is missing", "set it to the client secret issued for this client"
            )

        scope_value = extra.get("scope")
        if scope_value is None:
            scope: tuple[str, ...] = ()
        elif isinstance(scope_value, str):
            scope = tuple(scope_value.split())
        elif isinstance(scope_value, list | tuple) and all(isinstance(s, str) for s in scope_value):
            scope = tuple(scope_value)
        else:
            raise ConnectionFieldError(conn_id, "scope", "is not text", "give space-separated scopes")

        audience_param = _text(extra, "audience_param") or "audience"
        if audience_param not in AUDIENCE_PARAMS:
            raise ConnectionFieldError(
                conn_id, "audience_param", f"is {audience_param!r}", "set it to `audience` or `resource`"
            )

        timeout_value = extra.get("timeout", 10.0)
        try:
            timeout = float(timeout_value if timeout_value not in (None, "") else 10.0)
        except (TypeError, ValueError):
            timeout = -1.0
        if not 0 < timeout <= 300:
            raise ConnectionFieldError(
                conn_id, "timeout", f"is {timeout_value!r}", "give the HTTP timeout in seconds (0-300)"
            )

        ca_bundle = _text(extra, "ca_bundle")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise ConnectionFieldError(
                conn_id, "ca_bundle", "is not a readable file", "give the path of a PEM file with the IdP's CA"
            )

        return cls(
            conn_id=conn_id,
            issuer=issuer,
            client_id=client_id,
            client_secret=password,
            audience=_text(extra, "audience"),
            scope=scope,
            groups_claim=_text(extra, "groups_claim") or "groups",
            timeout=timeout,
            ca_bundle=ca_bundle,
            audience_param=audience_param,
        )

    @property
    def cache_key(self) -> tuple[str, ...]:
        """What makes two tokens of this connection interchangeable (see identity.cache)."""
        return (self.conn_id, self.issuer, self.audience or "", " ".join(self.scope), self.client_id)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for transient failures; Airflow's own task retries take over after the last one."""

    attempts: int = 4
    backoff: float = 0.5  # first wait in seconds, doubled after each attempt
    max_wait: float = 30.0  # a longer Retry-After ends the retries at once

    def wait(self, attempt: int) -> float:
        return float(self.backoff * (2 ** (attempt - 1)))


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document the client-credentials flow needs."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    auth_methods: tuple[str, ...]

    @property
    def auth_method(self) -> str:
        # Basic is the OAuth default; use post only when the IdP says it takes post but not basic.
        if "client_secret_post" in self.auth_methods and "client_secret_basic" not in self.auth_methods:
            return "client_secret_post"
        return "client_secret_basic"


_discovery: dict[tuple[str, str | None], tuple[float, ProviderMetadata]] = {}
_discovery_lock = threading.Lock()


def clear_discovery_cache() -> None:
    with _discovery_lock:
        _discovery.clear()


class OidcCredentialRejected(CredentialRejected):
    """The token endpoint refused the client; carries the IdP's own ``error`` and ``error_description``."""

    def __init__(self, message: str, *, error: str, error_description: str | None, status: int) -> None:
        self.error = error
        self.error_description = error_description
        self.status = status
        super().__init__(message)


_REJECTION_FIXES = {
    "invalid_client": "check the client id (login) and client secret (password) of the connection",
    "unauthorized_client": "allow the client_credentials grant for this client at the identity provider",
    "invalid_grant": "allow the client_credentials grant for this client at the identity provider",
    "invalid_scope": "request only scopes granted to this client (extra `scope`)",
    "invalid_target": "request an audience this client may use (extra `audience`)",
}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _expiry_from(expires_in: Any) -> datetime | None:
    """Expiry from the response's expires_in: only used when the token itself carries no exp."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds > 0 else None


class OidcClientCredentialsExchanger:
    """Trades a connection's client id and secret for a verified :class:`FederatedToken`."""

    def __init__(self, config: OidcClientConfig, *, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return f"OidcClientCredentialsExchanger(conn_id={self.config.conn_id!r}, issuer={self.config.issuer!r})"

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        conn = self.config.conn_id
        problem = ""
        attempt = 0
        for attempt in range(1, self.retry.attempts + 1):
            wait = self.retry.wait(attempt)
            try:
                response = requests.request(
                    method,
                    url,
                    timeout=self.config.timeout,
                    # A path wins over REQUESTS_CA_BUNDLE; True lets that variable apply.
                    verify=self.config.ca_bundle or True,
                    allow_redirects=False,
                    **kwargs,
                )
            except requests.exceptions.SSLError as exc:
                raise ConnectionFieldError(
                    conn,
                    "ca_bundle",
                    f"does not let the worker verify TLS of {url} ({type(exc).__name__})",
                    "set it to a PEM file holding the identity provider's CA",
                ) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: cannot reach {urlsplit(url).netloc}"
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                problem = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
                # The server's own Retry-After (even 0) beats our backoff.
                wait = wait if retry_after is None else retry_after
            if attempt == self.retry.attempts or wait > self.retry.max_wait:
                break
            log.info("connection `%s`: %s %s (%s); retrying in %.1fs", conn, what, url, problem, wait)
            time.sleep(wait)
        raise IdentityProviderUnavailable(
            f"connection `{conn}`: the {what} at {url} is unavailable after {attempt} attempt(s) ({problem}); "
            "the task will be retried"
        )

    def discover(self) -> ProviderMetadata:
        """The issuer's OIDC discovery document, fetched once per issuer per process (for an hour)."""
        cfg = self.config
        key = (cfg.issuer, cfg.ca_bundle)
        with _discovery_lock:
            cached = _discovery.get(key)
        if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        url = cfg.issuer.rstrip("/") + DISCOVERY_PATH
        response = self._send("GET", url, "discovery document", headers={"Accept": "application/json"})
        doc = _json_object(response)
        if response.status_code != 200 or not doc:
            raise ConnectionFieldError(
                cfg.conn_id,
                "host",
                f"has no OpenID discovery document ({url} answered {response.status_code})",
                "set it to the issuer URL, the `iss` of the identity provider's tokens",
            )
        issuer = str(doc.get("issuer", ""))
        if issuer.rstrip("/") != cfg.issuer.rstrip("/"):
            raise ConnectionFieldError(
                cfg.conn_id,
                "host",
                f"does not match the issuer {issuer!r} of its discovery document",
                f"set it to {issuer!r}",
            )
        endpoints = {}
        for name in ("token_endpoint", "jwks_uri"):
            value = str(doc.get(name) or "")

            def bad(problem: str, fix: str, name: str = name) -> ConfigurationError:
                return ConfigurationError(
                    f"connection `{cfg.conn_id}`: the identity provider's {name} {problem}; {fix}"
                )

            endpoints[name] = _checked_url(value, bad) if value else ""
            if not value:
                raise bad("is missing from its discovery document", "the IdP must publish it")
        methods = doc.get("token_endpoint_auth_methods_supported") or ()
        metadata = ProviderMetadata(
            issuer=issuer,
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            auth_methods=tuple(str(m) for m in methods),
        )
        with _discovery_lock:
            _discovery[key] = (time.monotonic(), metadata)
        return metadata

    def _request_token(self, metadata: ProviderMetadata) -> tuple[requests.Response, dict[str, Any]]:
        cfg = self.config
        data = {"grant_type": "client_credentials"}
        if cfg.scope:
            data["scope"] = " ".join(cfg.scope)
        if cfg.audience:
            data[cfg.audience_param] = cfg.audience
        auth: tuple[str, str] | None = None
        if metadata.auth_method == "client_secret_post":
            data |= {"client_id": cfg.client_id, "client_secret": cfg.client_secret}
        else:
            # RFC 6749 2.3.1: id and secret are form-encoded before they go into the Basic header.
            auth = (quote_plus(cfg.client_id), quote_plus(cfg.client_secret))
        response = self._send(
            "POST",
            metadata.token_endpoint,
            "token endpoint",
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
        )
        return response, _json_object(response)

    def _rejection(self, response: requests.Response, body: Mapping[str, Any]) -> Exception:
        cfg = self.config
        status = response.status_code
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")[:300] or None
        if description and cfg.client_secret in description:
            description = description.replace(cfg.client_secret, "***")
        if error or status in (400, 401, 403):
            error = error or f"HTTP {status}"
            fix = _REJECTION_FIXES.get(error, "check the client's registration at the identity provider")
            said = f"{error}: {description}" if description else error
            return OidcCredentialRejected(
                f"connection `{cfg.conn_id}`: the identity provider at {cfg.issuer} refused client "
                f"`{cfg.client_id}` ({said}); {fix}",
                error=error,
                error_description=description,
                status=status,
            )
        return ConfigurationError(
            f"connection `{cfg.conn_id}`: the token endpoint {response.url} answered HTTP {status}; "
            "check that host is the issuer URL"
        )

    def fetch(self) -> FederatedToken:
        """Run discovery and the client-credentials grant, verify the access token, and return it."""
        cfg = self.config
        metadata = self.discover()
        response, body = self._request_token(metadata)
        if response.status_code != 200:
            raise self._rejection(response, body)
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ConfigurationError(f"connection `{cfg.conn_id}`: the token endpoint answered without an access_token")
        fallback = _expiry_from(body.get("expires_in"))
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
            identity = verifier.verify(access_token, expires_at_fallback=fallback)
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
        scope = tuple(str(body.get("scope") or "").split()) or cfg.scope
        token = FederatedToken(
            access_token,
            expires_at=identity.expires_at,
            identity=identity,
            audience=identity.audience,
            scope=scope,
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
