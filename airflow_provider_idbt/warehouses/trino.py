"""Trino (dbt-trino): lineage naming only, so a user's own profile still names its datasets."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import IdentityLabels, Namespace, WarehouseSpec

WAREHOUSE = WarehouseSpec(
    adapter="trino",
    title="Trino",
    namespace=Namespace("trino", ("host", "port"), {"port": 443}),
    labels=IdentityLabels(recorded_in="`system.runtime.queries` and the event listener's query text"),
)
