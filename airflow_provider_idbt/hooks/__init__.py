"""Thin Airflow hooks over identity/: one per connection type, reading connections the normal Airflow way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.hooks.base import IdentityHook, missing_connection
from airflow_provider_idbt.hooks.oidc import OidcTokenHook
from airflow_provider_idbt.version_compat import AirflowNotFoundException, BaseHook

if TYPE_CHECKING:
    from airflow_provider_idbt.hooks.aws import AwsWebIdentityHook

__all__ = ["AwsWebIdentityHook", "IdentityHook", "OidcTokenHook", "identity_hook_for"]

# The one table from connection type to hook; get_provider_info names the same classes for Airflow.
HOOKS_BY_CONN_TYPE = {
    "idbt_oidc": "airflow_provider_idbt.hooks.oidc.OidcTokenHook",
    "idbt_aws": "airflow_provider_idbt.hooks.aws.AwsWebIdentityHook",
    "idbt_google": "airflow_provider_idbt.hooks.google.GoogleWorkloadIdentityHook",
    "idbt_azure": "airflow_provider_idbt.hooks.azure.AzureIdentityHook",
}


def identity_hook_for(conn_id: str) -> IdentityHook:
    """The identity hook for a connection, chosen by its conn_type."""
    import importlib

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise missing_connection(conn_id, " or ".join(HOOKS_BY_CONN_TYPE)) from None
    path = HOOKS_BY_CONN_TYPE.get(conn.conn_type or "")
    if path is None:
        raise ConfigurationError(
            f"connection `{conn_id}` has type `{conn.conn_type}`, which is not an identity connection; "
            f"use one of {', '.join(HOOKS_BY_CONN_TYPE)}"
        )
    module, _, name = path.rpartition(".")
    hook: IdentityHook = getattr(importlib.import_module(module), name)(conn_id)
    return hook


def __getattr__(name: str) -> object:
    # Imported on first use so `import airflow_provider_idbt.hooks` stays light.
    if name == "AwsWebIdentityHook":
        from airflow_provider_idbt.hooks.aws import AwsWebIdentityHook

        return AwsWebIdentityHook
    raise AttributeError(name)
