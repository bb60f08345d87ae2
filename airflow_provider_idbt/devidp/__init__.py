"""The development identity provider (`idbt dev-idp`): a local OIDC issuer whose tokens say they are for dev."""

from airflow_provider_idbt.devidp.provider import (
    DEFAULT_AUDIENCE,
    DEFAULT_CLIENT,
    DevClient,
    DevIdentityProvider,
)

__all__ = ["DEFAULT_AUDIENCE", "DEFAULT_CLIENT", "DevClient", "DevIdentityProvider"]
