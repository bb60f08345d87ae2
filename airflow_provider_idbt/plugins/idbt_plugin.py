"""The provider's Airflow plugin, found through the `airflow.plugins` entry point (no plugins folder needed)."""

from __future__ import annotations

from airflow_provider_idbt.listeners import identity_listener
from airflow_provider_idbt.version_compat import AirflowPlugin


class IdbtPlugin(AirflowPlugin):
    """Registers the identity lineage listener (the extra link is registered in get_provider_info)."""

    name = "idbt"
    listeners = [identity_listener]
