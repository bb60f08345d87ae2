"""OidcTokenHook: an `idbt_oidc` Airflow connection to a cached, masked, verified FederatedToken."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.get_provider_info import get_provider_info
from airflow_provider_idbt.identity.cache import TokenCache
from airflow_provider_idbt.identity.oidc import OidcClientConfig, OidcClientCredentialsExchanger
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.version_compat import AirflowNotFoundException, BaseHook, mask_secret

# One cache per worker process: tasks of the same connection in this process share a token while it lasts.
TOKEN_CACHE = TokenCache()


class OidcTokenHook(BaseHook):
    """Fetches an access token with the OIDC client-credentials grant.

    :param identity_conn_id: id of an `idbt_oidc` connection: host = issuer URL, login = client id,
        password = client secret, extras `audience`, `scope`, `groups_claim` (see the connection form).
    """

    conn_type = "idbt_oidc"
    hook_name = "idbt: OpenID Connect identity"
    default_conn_name = "idbt_oidc_default"
    conn_name_attr = "identity_conn_id"

    def __init__(self, identity_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.identity_conn_id = identity_conn_id

    def get_config(self) -> OidcClientConfig:
        """Read and validate the connection (env vars and secrets backends work as for any hook)."""
        try:
            conn = self.get_connection(self.identity_conn_id)
        except AirflowNotFoundException:
            raise ConfigurationError(
                f"connection `{self.identity_conn_id}` is not defined; create it (type `idbt_oidc`) in the "
                f"Airflow UI, with `airflow connections add`, or as AIRFLOW_CONN_{self.identity_conn_id.upper()}"
            ) from None
        if conn.password:
            mask_secret(conn.password)
        return OidcClientConfig.from_connection(
            self.identity_conn_id, conn.host, conn.login, conn.password, conn.extra_dejson
        )

    def get_token(self, min_ttl: timedelta | int = 300) -> FederatedToken:
        """A token valid for at least ``min_ttl`` (seconds or timedelta), from the cache or the IdP."""
        ttl = min_ttl if isinstance(min_ttl, timedelta) else timedelta(seconds=min_ttl)
        config = self.get_config()

        def fetch() -> FederatedToken:
            token = OidcClientCredentialsExchanger(config).fetch()
            mask_secret(token.reveal())
            return token

        token = TOKEN_CACHE.get(config.cache_key, fetch, ttl)
        # Masked again for a cached token: the masker of this task may not have seen it yet.
        mask_secret(token.reveal())
        return token

    def get_conn(self) -> FederatedToken:
        return self.get_token()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form behaviour declared in get_provider_info, in the hook's key spelling."""
        entry = next(
            item for item in get_provider_info()["connection-types"] if item["connection-type"] == cls.conn_type
        )
        return {key.replace("-", "_"): value for key, value in entry["ui-field-behaviour"].items()}
