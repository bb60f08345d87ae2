"""Azure Synapse (dbt-synapse): the SQL engine's error rows (shared with SQL Server)."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import WarehouseSpec
from airflow_provider_idbt.warehouses.sqlserver import SQL_ENGINE_LABELS, SQL_ENGINE_MISSING_GRANTS, sql_engine_failures

WAREHOUSE = WarehouseSpec(
    adapter="synapse",
    title="Azure Synapse",
    failures=sql_engine_failures("synapse"),
    missing_grants=SQL_ENGINE_MISSING_GRANTS,
    labels=SQL_ENGINE_LABELS,
)
