"""ClickHouse (dbt-clickhouse): lineage naming only, so a user's own profile still names its datasets."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import IdentityLabels, Namespace, WarehouseSpec

WAREHOUSE = WarehouseSpec(
    adapter="clickhouse",
    title="ClickHouse",
    namespace=Namespace("clickhouse", ("host", "port"), {"port": 8123}),
    labels=IdentityLabels(recorded_in="`system.query_log.query`"),
)
