"""GoogleWorkloadIdentityHook: an `idbt_google` connection to cached, masked Google tokens and credentials."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.hooks.base import TOKEN_CACHE, IdentityHook, with_masked_source
from airflow_provider_idbt.identity.google.config import GoogleFederationConfig
from airflow_provider_idbt.identity.token import FederatedToken

if TYPE_CHECKING:
    from airflow_provider_idbt.identity.google.credentials import FederatedGoogleCredentials
    from airflow_provider_idbt.identity.google.exchanger import GoogleFederationExchanger

CONN_TYPE = "idbt_google"
# google-auth refreshes 3m45s before expiry; a token handed to it must outlive that, or it would ask again at once.
MIN_CREDENTIALS_TTL = timedelta(minutes=5)


def _exchanger(config: GoogleFederationConfig) -> GoogleFederationExchanger:
    # google-auth is imported here, when a Google connection is used, never when a DAG file is parsed.
    try:
        from airflow_provider_idbt.identity.google.exchanger import GoogleFederationExchanger
    except ImportError:
        raise ConfigurationError(
            "the idbt_google connection type needs google-auth: pip install 'airflow-provider-idbt[google]'"
        ) from None
    return GoogleFederationExchanger(config)


class GoogleWorkloadIdentityHook(IdentityHook):
    """Google workload identity federation (STS) and service-account impersonation through google-auth.

    :param identity_conn_id: id of an `idbt_google` connection: extras `audience` (the workload identity
        provider), `target_principal` (service account), `delegates`, `scopes`, `subject_token_source` (`file`
        or `gce_metadata`), `mode` (`federation` or `environment`), endpoint overrides; see
        docs/connections/google.md.
        ``get_token()`` gives an access token, ``get_id_token(audience)`` an ID token, ``get_credentials()``
        a google-auth credentials object for Google client libraries.
    """

    conn_type = CONN_TYPE
    hook_name = "idbt: Google workload identity"
    default_conn_name = "idbt_google_default"

    def get_config(self) -> GoogleFederationConfig:
        conn = self.connection()
        return GoogleFederationConfig.from_connection(
            self.identity_conn_id, conn.login, conn.password, conn.extra_dejson
        )

    def _fetch(self, config: GoogleFederationConfig) -> FederatedToken:
        return _exchanger(config).fetch()

    def get_id_token(
        self, audience: str, min_ttl: timedelta | int = 300, *, include_email: bool = True
    ) -> FederatedToken:
        """An ID token of the connection's service account for ``audience``, from the cache or Google."""
        ttl = min_ttl if isinstance(min_ttl, timedelta) else timedelta(seconds=min_ttl)
        config = with_masked_source(self.get_config())

        def fetch() -> FederatedToken:
            token = _exchanger(config).fetch_id_token(audience, include_email=include_email)
            self._mask(token)
            return token

        key = (*self._cache_key(config), "id_token", audience, include_email)
        token = TOKEN_CACHE.get(key, fetch, ttl)
        self._mask(token)
        return token

    def get_credentials(self, min_ttl: timedelta | int = MIN_CREDENTIALS_TTL) -> FederatedGoogleCredentials:
        """google-auth credentials for Google client libraries, refreshed through this hook's token cache."""
        from airflow_provider_idbt.identity.google.credentials import FederatedGoogleCredentials

        ttl = max(min_ttl if isinstance(min_ttl, timedelta) else timedelta(seconds=min_ttl), MIN_CREDENTIALS_TTL)
        config = self.get_config()
        return FederatedGoogleCredentials(
            lambda: self.get_token(ttl),
            universe_domain=config.universe_domain,
            service_account_email=config.service_account,
            quota_project_id=config.quota_project_id,
        )

    def get_credentials_and_project_id(self) -> tuple[FederatedGoogleCredentials, str | None]:
        """The Google provider's ``GoogleBaseHook`` API: credentials and the connection's `project_id`."""
        return self.get_credentials(), self.get_config().project_id


class FederatedGoogleHookMixin:
    """Put first in the bases of a Google provider hook: a ``gcp_conn_id`` naming an `idbt_google` connection
    then gets federated credentials from :class:`GoogleWorkloadIdentityHook`; other connections work as before.

    ``class IdbtBigQueryHook(FederatedGoogleHookMixin, BigQueryHook): pass`` runs BigQuery calls as the same
    identity as the dbt models, with the cache's early refresh instead of one token exchange per call.
    """

    gcp_conn_id: str
    impersonation_chain: Any
    _cached_credentials: Any
    _cached_project_id: str | None

    def get_credentials_and_project_id(self) -> tuple[Any, str | None]:
        conn = self.get_connection(self.gcp_conn_id)  # type: ignore[attr-defined]
        if conn.conn_type != CONN_TYPE:
            return super().get_credentials_and_project_id()  # type: ignore[misc]
        if self.impersonation_chain:
            raise ConfigurationError(
                f"connection `{self.gcp_conn_id}` is an idbt_google connection: set its `target_principal` "
                "(and `delegates`) instead of the hook's impersonation_chain"
            )
        if self._cached_credentials is None:
            identity = GoogleWorkloadIdentityHook(self.gcp_conn_id)
            self._cached_credentials, self._cached_project_id = identity.get_credentials_and_project_id()
        return self._cached_credentials, self._cached_project_id
