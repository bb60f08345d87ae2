"""AzureIdentityHook: an `idbt_azure` connection to a cached, masked, verified Entra ID token per scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from airflow_provider_idbt.hooks.base import TOKEN_CACHE, IdentityHook
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.azure.exchanger import AzureExchanger
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.version_compat import mask_secret


class AzureIdentityHook(IdentityHook):
    """Gets Entra ID application tokens through msal: federated credential, certificate or client secret.

    :param identity_conn_id: id of an `idbt_azure` connection: login = application (client) id, password = client
        secret or PEM certificate + key (empty for a federated credential); extras `tenantId`, `cloud_environment`,
        `authority_host`, `scopes` or `warehouse`, `groups`, `subject_token_*` (see docs/connections/azure.md).
        msal is imported only when a token is requested.
    """

    conn_type = "idbt_azure"
    hook_name = "idbt: Azure / Entra ID identity"
    default_conn_name = "idbt_azure_default"

    def __init__(self, identity_conn_id: str | None = None) -> None:
        super().__init__(identity_conn_id)
        self._scopes: tuple[str, ...] = ()
        self._min_ttl = timedelta(0)
        self._fresh = False

    def get_config(self) -> AzureIdentityConfig:
        conn = self.connection()
        config = AzureIdentityConfig.from_connection(
            self.identity_conn_id, conn.login, conn.password, conn.extra_dejson
        )
        if config.certificate is not None:
            for secret in config.certificate.secrets():
                mask_secret(secret)  # re-serialized or read from certificate_path: Airflow never saw it
        return replace(config, scopes=self._scopes) if self._scopes else config

    def get_token(self, min_ttl: timedelta | int = 300, *, scopes: Sequence[str] | None = None) -> FederatedToken:
        """A token valid for ``min_ttl``; ``scopes`` overrides the connection's (one token per scope set)."""
        self._scopes = tuple(scopes or ())
        self._min_ttl = min_ttl if isinstance(min_ttl, timedelta) else timedelta(seconds=min_ttl)
        return super().get_token(min_ttl)

    def refresh_token(self, min_ttl: timedelta | int = 300, *, scopes: Sequence[str] | None = None) -> FederatedToken:
        """A new token after the warehouse rejected one: past our cache and msal's, which would return the same."""
        self._scopes = tuple(scopes or ())
        TOKEN_CACHE.invalidate(self._cache_key(self.get_config()))
        self._fresh = True
        try:
            return self.get_token(min_ttl, scopes=scopes)
        finally:
            self._fresh = False

    def _fetch(self, config: AzureIdentityConfig) -> FederatedToken:
        return AzureExchanger(config).fetch(self._min_ttl, fresh=self._fresh)
