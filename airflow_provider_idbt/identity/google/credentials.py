"""google-auth credentials whose token comes from idbt's token cache, for Google client libraries and hooks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any, NoReturn

from google.auth import credentials

from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext


class FederatedGoogleCredentials(credentials.CredentialsWithQuotaProject):
    """Credentials for BigQuery, GCS and the Google provider's hooks, backed by an identity hook's token cache.

    google-auth calls :meth:`refresh` when the token is missing or within a few minutes of expiry, and the Google
    provider's ``_get_access_token`` calls it on every use; either way the token comes from the cache, which
    only goes to Google when the cached token no longer covers ``min_ttl`` (early refresh, not per call).
    """

    def __init__(
        self,
        get_token: Callable[[], FederatedToken],
        *,
        universe_domain: str,
        service_account_email: str | None = None,
        quota_project_id: str | None = None,
    ) -> None:
        super().__init__()
        self._get_token = get_token
        self._universe_domain = universe_domain
        self._service_account_email = service_account_email
        self._quota_project_id = quota_project_id
        self._identity: IdentityContext | None = None

    def refresh(self, request: Any) -> None:
        # ``request`` is unused: the identity exchanger has its own transport, retries and endpoints.
        token = self._get_token()
        self.token = token.reveal()
        # google-auth compares expiries as naive UTC.
        self.expiry = token.expires_at.astimezone(UTC).replace(tzinfo=None)
        self._identity = token.identity

    @property
    def identity(self) -> IdentityContext | None:
        """Who the current token stands for (None before the first refresh)."""
        return self._identity

    @property
    def service_account_email(self) -> str | None:
        return self._service_account_email

    def with_quota_project(self, quota_project_id: str | None) -> FederatedGoogleCredentials:
        return FederatedGoogleCredentials(
            self._get_token,
            universe_domain=self._universe_domain,
            service_account_email=self._service_account_email,
            quota_project_id=quota_project_id,
        )

    def __copy__(self) -> FederatedGoogleCredentials:
        return self.with_quota_project(self._quota_project_id)

    def __repr__(self) -> str:
        who = self._identity.subject if self._identity else self._service_account_email
        fp = self._identity.fingerprint if self._identity else None
        return f"FederatedGoogleCredentials(subject={who!r}, fingerprint={fp!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("FederatedGoogleCredentials cannot be pickled: it holds a token")
