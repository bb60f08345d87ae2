"""Azure exchanger: msal ConfidentialClientApplication (federated assertion, certificate or secret), verified token."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError, CredentialRejected, TokenVerificationError
from airflow_provider_idbt.identity.azure.claims import (
    AzureClaims,
    identity_from_entra_claims,
    tenant_metadata,
    verify_access_token,
)
from airflow_provider_idbt.identity.azure.clouds import accepted_audiences
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.azure.http import MsalHttpClient
from airflow_provider_idbt.identity.sources import SubjectToken
from airflow_provider_idbt.identity.subject_check import checked_subject_token
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext
from airflow_provider_idbt.identity.transport import HttpClient, RetryPolicy

log = logging.getLogger(__name__)

AADSTS = re.compile(r"AADSTS(\d+)")
# Codes that can mean "the subject token was stale when read": read it once more before giving up.
STALE_SUBJECT_CODES = frozenset({700024, 700027, 50027})
_FIXES = {
    90002: "check tenantId (and cloud_environment: the tenant may live in another cloud)",
    700016: "check the client id (login) and that the app is registered in this tenant",
    7000215: "put the secret's Value (not its Secret ID) in password, or create a new secret",
    7000222: "the client secret has expired: create a new one in the app registration",
    700027: "the assertion's signature does not verify: for a certificate, upload its public key to the app "
    "registration; for a federated credential, check that the issuer's keys are published",
    700024: "the assertion is outside its validity window: check the worker's clock and that the token is renewed",
    700211: "add a federated credential whose issuer is the subject token's `iss` exactly",
    700212: "set the federated credential's audience to the subject token's `aud` (default api://AzureADTokenExchange)",
    700213: "set the federated credential's subject to the subject token's `sub` exactly (case-sensitive)",
    70011: "request a `.default` scope of the warehouse's resource (extra `scopes` or `warehouse`)",
    500011: "the warehouse's resource has no service principal in this tenant: check `scopes`/`resource`",
    50027: "the assertion is not a valid signed JWT: check the token source",
}


class AzureCredentialRejected(CredentialRejected):
    """Entra ID refused the application's credential; carries Entra's ``error`` and AADSTS code."""

    def __init__(self, message: str, *, error: str, code: int | None) -> None:
        self.error = error
        self.code = code
        super().__init__(message)


class AzureFederatedToken(FederatedToken):
    """A FederatedToken from Entra ID, with the Entra facts of its claims (``claims.upn`` stays out of events)."""

    __slots__ = ("claims",)

    def __init__(self, secret: str, identity: IdentityContext, claims: AzureClaims, scope: tuple[str, ...]) -> None:
        super().__init__(
            secret, expires_at=identity.expires_at, identity=identity, audience=identity.audience, scope=scope
        )
        self.claims = claims


@dataclass
class FederatedAssertion:
    """msal's client assertion callable: the current subject token, read (and checked) on every call."""

    http: HttpClient
    config: AzureIdentityConfig
    last: SubjectToken | None = None

    def __call__(self) -> str:
        source = self.config.subject_source
        assert source is not None
        self.last = checked_subject_token(self.http, source, self.config.subject_check)
        return self.last.value.reveal()

    def reread(self) -> bool:
        """Read the source again; True when it now holds another token (a rotation landed meanwhile)."""
        source = self.config.subject_source
        if source is None or self.last is None:
            return False
        return source.get(refresh=True).value != self.last.value


@dataclass
class _Application:
    app: Any  # msal.ConfidentialClientApplication
    assertion: FederatedAssertion | None
    lock: threading.Lock


# One msal application per credential per process, so msal's token cache and its discovery are shared by tasks.
_applications: dict[tuple[Any, ...], _Application] = {}
_applications_lock = threading.Lock()


def clear_applications() -> None:
    """Forget every msal application (and with it msal's token cache)."""
    with _applications_lock:
        _applications.clear()


def _msal() -> Any:
    try:
        import msal
    except ImportError:
        raise ConfigurationError(
            "the idbt_azure connection type needs msal: pip install 'airflow-provider-idbt[azure]'"
        ) from None
    return msal


class AzureExchanger:
    """Gets a token for the connection's scopes from Entra ID through msal, and verifies who it names."""

    def __init__(self, config: AzureIdentityConfig, *, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.http = HttpClient(config.conn_id, config.timeout, config.ca_bundle, self.retry)

    def __repr__(self) -> str:
        cfg = self.config
        return f"AzureExchanger(conn_id={cfg.conn_id!r}, authority={cfg.authority!r}, client_id={cfg.client_id!r})"

    def _application(self) -> _Application:
        cfg = self.config
        key = (
            cfg.authority,
            cfg.client_id,
            cfg.credential,
            cfg.secret_fingerprint,
            cfg.subject_check,
            cfg.ca_bundle,
            cfg.timeout,
            self.retry,
        )
        with _applications_lock:
            entry = _applications.get(key)
        if entry is not None:
            return entry
        msal = _msal()
        assertion = None
        if cfg.credential == "federated":
            assertion = FederatedAssertion(self.http, cfg)
            credential: Any = {"client_assertion": assertion}
        elif cfg.credential == "certificate":
            assert cfg.certificate is not None
            credential = cfg.certificate.msal_credential()
        else:
            assert cfg.client_secret is not None
            credential = cfg.client_secret.reveal()
        try:
            app = msal.ConfidentialClientApplication(
                cfg.client_id,
                client_credential=credential,
                authority=cfg.authority,
                # Known clouds need no instance discovery, and it would call the public cloud from sovereign ones.
                instance_discovery=False,
                http_client=MsalHttpClient(self.http),
                token_cache=msal.TokenCache(),  # in memory only, never on disk
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"connection `{cfg.conn_id}`: Entra ID authority {cfg.authority} is unusable ({_first_line(exc)}); "
                "check tenantId, cloud_environment and authority_host"
            ) from None
        entry = _Application(app, assertion, threading.Lock())
        with _applications_lock:
            return _applications.setdefault(key, entry)

    def fetch(self, min_ttl: timedelta = timedelta(0), *, fresh: bool = False) -> AzureFederatedToken:
        """A verified token for the scopes, from msal's cache when it still covers ``min_ttl`` (and not ``fresh``)."""
        cfg = self.config
        entry = self._application()
        scopes = list(cfg.scopes)
        with entry.lock:
            result = entry.app.acquire_token_for_client(scopes)
            cached = result.get("token_source") == "cache"
            if cached and (fresh or float(result.get("expires_in") or 0) < min_ttl.total_seconds()):
                # msal's cache rules keep a token until 5 minutes before expiry; the run needs min_ttl, so evict it.
                self._forget(entry, scopes)
                result = entry.app.acquire_token_for_client(scopes)
            if "access_token" not in result and self._stale(result, entry):
                log.info("connection `%s`: assertion refused; retrying once with a re-read subject token", cfg.conn_id)
                result = entry.app.acquire_token_for_client(scopes)
        if "access_token" not in result:
            raise self._rejection(result, entry)
        return self._verified(str(result["access_token"]), result)

    def forget(self) -> None:
        """Drop this connection's tokens from msal's cache (after the warehouse rejected one)."""
        entry = self._application()
        with entry.lock:
            self._forget(entry, list(self.config.scopes))

    def _forget(self, entry: _Application, scopes: list[str]) -> None:
        cache = entry.app.token_cache
        for item in list(cache.search(cache.CredentialType.ACCESS_TOKEN, target=scopes)):
            if item.get("client_id") == self.config.client_id:
                cache.remove_at(item)

    def _stale(self, result: Mapping[str, Any], entry: _Application) -> bool:
        return bool(
            entry.assertion is not None and STALE_SUBJECT_CODES & set(_codes(result)) and entry.assertion.reread()
        )

    def _rejection(self, result: Mapping[str, Any], entry: _Application) -> Exception:
        cfg = self.config
        error = str(result.get("error") or "unknown_error")
        codes = _codes(result)
        description = _first_line(result.get("error_description") or "")[:400]
        secrets = [cfg.client_secret.reveal()] if cfg.client_secret else []
        if entry.assertion is not None and entry.assertion.last is not None:
            secrets.append(entry.assertion.last.value.reveal())
        for secret in secrets:
            description = description.replace(secret, "***")
        code = codes[0] if codes else None
        fix = _FIXES.get(code or 0, "check the app registration and its credential")
        what = f"application {cfg.client_id} ({cfg.credential} credential"
        if entry.assertion is not None and entry.assertion.last is not None:
            what += f" from {entry.assertion.last.origin}"
        return AzureCredentialRejected(
            f"connection `{cfg.conn_id}`: Entra ID ({cfg.authority}) refused {what}): {error}: {description}; {fix}",
            error=error,
            code=code,
        )

    def _verified(self, access_token: str, result: Mapping[str, Any]) -> AzureFederatedToken:
        cfg = self.config
        metadata = tenant_metadata(cfg.authority, self.http)
        try:
            claims = verify_access_token(
                access_token,
                metadata=metadata,
                cloud=cfg.cloud,
                audiences=accepted_audiences(cfg.scopes) + cfg.audiences,
                ca_bundle=cfg.ca_bundle,
                timeout=cfg.timeout,
            )
            identity, azure = identity_from_entra_claims(
                claims, access_token, cloud=cfg.cloud, declared_groups=cfg.groups
            )
        except TokenVerificationError as exc:
            raise TokenVerificationError(
                f"connection `{cfg.conn_id}`: the access token from {cfg.authority} failed verification: {exc}"
            ) from None
        log.info(
            "connection `%s`: Entra token for %s (app %s, tenant %s) from %s, %s, expires %s",
            cfg.conn_id,
            identity.subject,
            identity.principal,
            azure.tenant_id,
            "msal's cache" if result.get("token_source") == "cache" else "Entra ID",
            identity.fingerprint,
            identity.expires_at.isoformat(timespec="seconds"),
        )
        return AzureFederatedToken(access_token, identity, azure, tuple(cfg.scopes))


def _codes(result: Mapping[str, Any]) -> list[int]:
    codes = [int(code) for code in result.get("error_codes") or () if str(code).isdigit()]
    return codes or [int(found) for found in AADSTS.findall(str(result.get("error_description") or ""))]


def _first_line(value: Any) -> str:
    # Entra appends "Trace ID / Correlation ID / Timestamp" lines; the first line is the message.
    return str(value).strip().splitlines()[0] if str(value).strip() else ""
