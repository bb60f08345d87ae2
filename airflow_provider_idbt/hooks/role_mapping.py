"""Where the group-to-role mapping comes from: the identity connection's extra, else the `[idbt]` config section."""

from __future__ import annotations

from typing import Any

from airflow_provider_idbt.dbt.permissions import RoleMapping
from airflow_provider_idbt.version_compat import AirflowNotFoundException, BaseHook

EXTRA_KEY = "role_mapping"
CONFIG_SECTION = "idbt"
CONFIG_KEY = "role_mapping"


def _config_value() -> str:
    from airflow.configuration import conf

    return str(conf.get(CONFIG_SECTION, CONFIG_KEY, fallback="") or "")


def load_role_mapping(identity_conn_id: str) -> RoleMapping | None:
    """The mapping for tasks of ``identity_conn_id``; platform-controlled places only, never a DAG argument.

    The connection wins over the deployment-wide ``[idbt] role_mapping`` so one environment can differ.
    """
    extra: dict[str, Any] = {}
    try:
        extra = BaseHook.get_connection(identity_conn_id).extra_dejson or {}
    except AirflowNotFoundException:
        pass  # the identity hook has already said what is missing
    value = extra.get(EXTRA_KEY)
    if value not in (None, "", {}):
        return RoleMapping.parse(value, f"connection `{identity_conn_id}` extra `{EXTRA_KEY}`")
    return RoleMapping.parse(_config_value(), f"Airflow config [{CONFIG_SECTION}] {CONFIG_KEY}")
