"""Google exchanger: STS token exchange and service-account impersonation through google-auth, as FederatedTokens."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from google.auth import compute_engine, exceptions, identity_pool, impersonated_credentials
from google.auth.credentials import Credentials

from airflow_provider_idbt.errors import ConfigurationError, CredentialRejected, IdbtError
from airflow_provider_idbt.identity.google.config import CLOUD_PLATFORM_SCOPE, GoogleFederationConfig
from airflow_provider_idbt.identity.google.transport import RoutedRequest
from airflow_provider_idbt.identity.sources import SubjectToken
from airflow_provider_idbt.identity.subject_check import checked_subject_token
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint
from airflow_provider_idbt.identity.transport import HttpClient, RetryPolicy, json_object

log = logging.getLogger(__name__)

_STS_FIXES = {
    "invalid_grant": (
        "check that the workload identity provider trusts the subject token's issuer, that the token's aud is one "
        "of the provider's allowed audiences, and that the provider's attribute condition admits it"
    ),
    "invalid_target": "check `audience`: the pool or provider does not exist, is disabled, or is in another project",
    "invalid_request": "check `audience` and the subject token type",
    "unauthorized_client": "check the provider's attribute condition",
}
_IAM_FIXES = {
    "PERMISSION_DENIED": (
        "grant roles/iam.workloadIdentityUser (federation) or roles/iam.serviceAccountTokenCreator "
        "(environment) on the service account to {principal} (see docs/connections/google.md)"
    ),
    "UNAUTHENTICATED": "the token from STS or the metadata server was not accepted; check the IAM Credentials endpoint",
    "NOT_FOUND": "the service account does not exist; check `target_principal`",
    "INVALID_ARGUMENT": "check `scopes`, `delegates` and `lifetime_seconds` (above 3600 needs an organisation policy)",
}


class GoogleRefused(CredentialRejected):
    """Google STS or the IAM Credentials API refused; carries Google's own error code."""

    def __init__(self, message: str, *, code: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class _Supplier(identity_pool.SubjectTokenSupplier):
    """Hands google-auth the subject token we already read and checked (google-auth never reads the source)."""

    token: SubjectToken

    def get_subject_token(self, context: Any, request: Any) -> str:
        return self.token.value.reveal()


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:300]


def _body_of(exc: exceptions.GoogleAuthError) -> Mapping[str, Any]:
    body = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _sts_refusal(exc: exceptions.OAuthError, secrets: tuple[str, ...]) -> GoogleRefused:
    body = _body_of(exc)
    code = str(body.get("error") or "sts_error")
    fallback = str(exc.args[0]) if exc.args else ""
    detail = _redact(str(body.get("error_description") or fallback), secrets)
    fix = _STS_FIXES.get(code, "check the workload identity pool provider")
    return GoogleRefused(f"Google STS refused the subject token ({code}: {detail}); {fix}", code=code)


def _iam_refusal(
    body: Mapping[str, Any], status: int, what: str, principal: str, secrets: tuple[str, ...]
) -> GoogleRefused:
    raw = body.get("error")
    error: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    code = str(error.get("status") or f"HTTP {status}")
    message = _redact(str(error.get("message") or ""), secrets)
    fix = _IAM_FIXES.get(code, "check the service account and its IAM bindings").format(principal=principal)
    return GoogleRefused(f"the IAM Credentials API refused {what} ({code}: {message}); {fix}", code=code)


class GoogleFederationExchanger:
    """Mints access tokens (and ID tokens) for one `idbt_google` connection through google-auth."""

    def __init__(self, config: GoogleFederationConfig, *, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.http = HttpClient(config.conn_id, config.timeout, config.ca_bundle, self.retry)
        self.request = RoutedRequest(self.http, config.endpoints)

    def __repr__(self) -> str:
        return f"GoogleFederationExchanger(conn_id={self.config.conn_id!r}, mode={self.config.mode!r})"

    # -- google-auth credentials, built directly (the load_credentials_* helpers call Cloud Resource Manager) --

    def _source(self, subject: SubjectToken | None, scopes: tuple[str, ...]) -> Credentials:
        cfg = self.config
        if subject is None:
            return compute_engine.Credentials(universe_domain=cfg.universe_domain, scopes=list(scopes))
        assert cfg.audience is not None
        return identity_pool.Credentials(
            audience=cfg.audience,
            subject_token_type=subject.token_type,
            token_url=cfg.endpoints.sts_token_url,
            subject_token_supplier=_Supplier(subject),
            scopes=list(scopes),
            universe_domain=cfg.universe_domain,
        )

    def _impersonated(self, source: Credentials) -> impersonated_credentials.Credentials:
        # Built here rather than through identity_pool's service_account_impersonation_url: that path has no
        # delegates, and the environment mode needs the same construction.
        cfg = self.config
        assert cfg.service_account is not None
        return impersonated_credentials.Credentials(
            source_credentials=source,
            target_principal=cfg.service_account,
            target_scopes=list(cfg.scopes),
            delegates=self._delegates() or None,
            lifetime=cfg.lifetime_seconds,
            quota_project_id=cfg.quota_project_id,
            iam_endpoint_override=cfg.endpoints.service_account_url(cfg.service_account, "generateAccessToken"),
        )

    def _delegates(self) -> list[str]:
        return [f"projects/-/serviceAccounts/{d}" for d in self.config.delegates]

    def _subject(self, *, refresh: bool = False) -> SubjectToken | None:
        cfg = self.config
        if cfg.subject_source is None:
            return None
        return checked_subject_token(self.http, cfg.subject_source, cfg.subject_check, refresh=refresh)

    def _refresh(self, credentials: Credentials, subject: SubjectToken | None) -> None:
        secrets = (subject.value.reveal(),) if subject else ()
        try:
            credentials.refresh(self.request)
        except exceptions.OAuthError as exc:  # only STS speaks OAuth errors here
            raise _sts_refusal(exc, secrets) from None
        except exceptions.RefreshError as exc:
            if isinstance(exc.__cause__, exceptions.TransportError):  # compute_engine wraps metadata failures
                raise ConfigurationError(
                    f"connection `{self.config.conn_id}`: the metadata server at {self.config.endpoints.metadata} "
                    f"gave no credentials ({_redact(str(exc.args[0]) if exc.args else '', secrets)}); run the "
                    "worker with a service account (Cloud Composer, GKE workload identity)"
                ) from None
            raise _iam_refusal(_body_of(exc), 0, "to mint a token", self._principal_hint(subject), secrets) from None

    def _mint(self, subject: SubjectToken | None) -> tuple[Credentials, Credentials]:
        """(final credentials, source credentials), refreshed: the final token is in ``credentials.token``."""
        cfg = self.config
        if cfg.service_account is None:
            source = self._source(subject, cfg.scopes)
            self._refresh(source, subject)
            return source, source
        target = self._impersonated(self._source(subject, (CLOUD_PLATFORM_SCOPE,)))
        self._refresh(target, subject)
        return target, target._source_credentials

    def _with_reread(self, subject: SubjectToken | None, mint: Any) -> tuple[Any, SubjectToken | None]:
        """Run ``mint(subject)``; when STS says invalid_grant, read the subject token again once and retry."""
        try:
            return mint(subject), subject
        except GoogleRefused as refused:
            if subject is None or refused.code != "invalid_grant":
                raise self._named(refused) from None
            fresh = self._subject(refresh=True)
            if fresh is None or fresh.value == subject.value:
                raise self._named(refused, subject) from None
            log.info("connection `%s`: subject token refused; retrying once with a re-read one", self.config.conn_id)
        try:
            return mint(fresh), fresh
        except GoogleRefused as refused:
            raise self._named(refused, fresh) from None

    def _named(self, refused: GoogleRefused, subject: SubjectToken | None = None) -> GoogleRefused:
        origin = f" from {subject.origin}" if subject else ""
        return GoogleRefused(f"connection `{self.config.conn_id}`{origin}: {refused}", code=refused.code)

    def fetch(self) -> FederatedToken:
        """An access token for the connection's scopes, as the impersonated service account if one is given."""
        (credentials, source), subject = self._with_reread(self._subject(), self._mint)
        token = str(credentials.token)
        expires_at = _aware(credentials.expiry)
        identity = self._identity(token, expires_at, subject, source)
        log.info(
            "connection `%s`: Google access token for %s, %s, expires %s",
            self.config.conn_id,
            identity.subject,
            identity.fingerprint,
            expires_at.isoformat(timespec="seconds"),
        )
        return FederatedToken(token, expires_at=expires_at, identity=identity, scope=self.config.scopes)

    def fetch_id_token(self, audience: str, *, include_email: bool = True) -> FederatedToken:
        """An ID token of the impersonated service account for ``audience`` (Cloud Run, IAP, Cloud Functions).

        Hand-written call: google-auth's ``IDTokenCredentials`` builds the generateIdToken URL from a module
        constant, so it cannot reach a configured IAM Credentials endpoint (Private Service Connect, tests).
        """
        cfg = self.config
        if cfg.service_account is None:
            raise ConfigurationError(
                f"connection `{cfg.conn_id}`: ID tokens are minted for a service account; set `target_principal`"
            )

        def mint(subject: SubjectToken | None) -> tuple[str, Credentials]:
            source = self._source(subject, (CLOUD_PLATFORM_SCOPE,))
            self._refresh(source, subject)
            secrets = tuple(s for s in (str(source.token), subject.value.reveal() if subject else "") if s)
            assert cfg.service_account is not None
            response = self.http.send(
                "POST",
                cfg.endpoints.service_account_url(cfg.service_account, "generateIdToken"),
                "IAM Credentials API",
                json={"audience": audience, "delegates": self._delegates(), "includeEmail": include_email},
                headers={"Authorization": f"Bearer {source.token}"},
            )
            body = json_object(response)
            if response.status_code != 200 or not isinstance(body.get("token"), str):
                principal = self._principal_hint(subject)
                raise _iam_refusal(body, response.status_code, "an ID token", principal, secrets)
            return str(body["token"]), source

        (token, source), subject = self._with_reread(self._subject(), mint)
        claims = jwt.decode(token, options={"verify_signature": False})  # from the IAM endpoint we called over TLS
        expires_at = datetime.fromtimestamp(float(claims["exp"]), UTC)
        base = self._identity(token, expires_at, subject, source)
        identity = IdentityContext(
            issuer=str(claims.get("iss") or base.issuer),
            subject=base.subject,
            expires_at=expires_at,
            fingerprint=base.fingerprint,
            principal=base.principal,
            groups=base.groups,
            audience=(audience,),
            attributes=base.attributes,
        )
        return FederatedToken(token, expires_at=expires_at, identity=identity, audience=(audience,))

    # -- identity ---------------------------------------------------------------------------------------------

    def _principal_hint(self, subject: SubjectToken | None) -> str:
        cfg = self.config
        if subject is None:
            return "the environment's service account"
        sub = _claims(subject).get("sub")
        return f"{cfg.federated_principal}/subject/{sub}" if sub else f"{cfg.federated_principal}/*"

    def _identity(
        self, token: str, expires_at: datetime, subject: SubjectToken | None, source: Credentials
    ) -> IdentityContext:
        """Who the opaque Google token stands for: the subject token STS accepted, and the service account."""
        cfg = self.config
        attributes = {"gcp_universe": cfg.universe_domain}
        audience: tuple[str, ...] = ()
        if subject is not None:
            # STS accepted exactly this token, so its claims are the ones Google verified (and, with
            # `subject_issuer`, ones we verified against the issuer's JWKS before sending it).
            claims = _claims(subject)
            principal = f"{cfg.federated_principal}/subject/{claims.get('sub', '')}"
            attributes["gcp_subject_issuer"] = str(claims.get("iss", ""))
            audience = (str(cfg.audience),)
        else:
            principal = str(getattr(source, "service_account_email", "") or "environment")
        if cfg.project_id:
            attributes["gcp_project"] = cfg.project_id
        return IdentityContext(
            issuer=cfg.endpoints.iam_credentials if cfg.service_account else cfg.endpoints.sts,
            subject=cfg.service_account or principal,
            expires_at=expires_at,
            fingerprint=fingerprint(token),
            principal=principal,
            groups=cfg.groups,
            audience=audience,
            attributes=attributes,
        )


def _claims(subject: SubjectToken) -> dict[str, Any]:
    try:
        return dict(jwt.decode(subject.value.reveal(), options={"verify_signature": False}))
    except jwt.InvalidTokenError:
        return {}


def _aware(expiry: datetime | None) -> datetime:
    if expiry is None:
        raise IdbtError("Google returned a token without an expiry")
    # google-auth keeps expiries as naive UTC.
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
