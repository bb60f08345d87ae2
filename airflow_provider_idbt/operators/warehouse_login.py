"""The secrets a task's dbt process logs in with: the token itself, or what the warehouse module makes of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.version_compat import mask_secret
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.login import WarehouseLogin, token_login


def warehouse_login(
    token: FederatedToken,
    adapter: str | None,
    profile_args: Mapping[str, Any] | None,
    login_args: Mapping[str, Any] | None,
) -> WarehouseLogin:
    """The login for this run; every secret it holds is registered with Airflow's masker before use.

    A generated profile's login fields come from ``profile_args``; a user's own profiles.yml gives them as
    the operator's ``login_args``.
    """
    from airflow_provider_idbt.dbt.profiles import login_args as profile_login_args

    spec = warehouse(adapter)
    if spec is None or spec.login is None:
        if login_args:
            raise ConfigurationError(
                f"login_args is set, but the {adapter or 'unknown'} warehouse logs in with the token itself; "
                "remove login_args"
            )
        return token_login(token)
    if profile_args and login_args:
        raise ConfigurationError("give the login fields in profile_args or in login_args, not both")
    assert adapter is not None
    args = profile_login_args(adapter, profile_args) if profile_args else dict(login_args or {})
    login = spec.login(token, args)
    for secret in login.secrets():
        mask_secret(secret)
    return login
