"""OidcTokenHook: an `idbt_oidc` Airflow connection to a cached, masked, verified FederatedToken."""

from __future__ import annotations

from airflow_provider_idbt.hooks.base import IdentityHook
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.oidc.exchanger import OidcTokenExchanger
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.version_compat import mask_secret


class OidcTokenHook(IdentityHook):
    """Fetches an access token with OIDC client credentials or RFC 8693 token exchange.

    :param identity_conn_id: id of an `idbt_oidc` connection: host = issuer URL, login = client id,
        password = client secret (or PEM private key for ``client_auth: private_key_jwt``); extras
        `audience`, `scope`, `groups_claim`, `groups`, `grant_type`, `subject_token_*` (see docs/connections/oidc.md).
    """

    conn_type = "idbt_oidc"
    hook_name = "idbt: OpenID Connect identity"
    default_conn_name = "idbt_oidc_default"

    def get_config(self) -> OidcClientConfig:
        """Read and validate the connection."""
        conn = self.connection()
        config = OidcClientConfig.from_connection(
            self.identity_conn_id, conn.host, conn.login, conn.password, conn.extra_dejson
        )
        if config.private_key:
            mask_secret(config.private_key)  # it may come from private_key_file, which Airflow never saw
        return config

    def _fetch(self, config: OidcClientConfig) -> FederatedToken:
        return OidcTokenExchanger(config).fetch()
