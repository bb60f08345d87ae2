"""SQL Server and Azure SQL (dbt-sqlserver); its error rows also serve Fabric and Synapse, which share the engine."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import (
    FailureRow,
    IdentityLabels,
    Namespace,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)


def sql_engine_failures(adapter: str) -> tuple[FailureRow, ...]:
    """18456 is "login failed"; 229/230/262/300 are the engine's permission errors; AADSTS is Entra's refusal."""
    return failure_rows(
        adapter,
        ("auth", r"login failed|\(18456\)|\bAADSTS\d+|access token (has )?expired"),
        ("permission", r"permission was denied|permission denied|\((?:229|230|262|300)\)"),
    )


SQL_ENGINE_MISSING_GRANTS = missing_grant_rows(r"the (\w+(?: \w+)?) permission was denied on the object '([^']+)'")
SQL_ENGINE_LABELS = IdentityLabels(recorded_in="Query Store and Extended Events' statement text")

WAREHOUSE = WarehouseSpec(
    adapter="sqlserver",
    title="SQL Server / Azure SQL",
    failures=sql_engine_failures("sqlserver"),
    missing_grants=SQL_ENGINE_MISSING_GRANTS,
    namespace=Namespace("mssql", ("server", "port"), {"port": 1433}),
    labels=SQL_ENGINE_LABELS,
)
