"""Databricks (dbt-databricks): Unity Catalog error classes as rows, and lineage naming by workspace host."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import (
    IdentityLabels,
    Namespace,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

WAREHOUSE = WarehouseSpec(
    adapter="databricks",
    title="Databricks",
    failures=failure_rows(
        "databricks",
        ("auth", r"invalid access token|UNAUTHENTICATED|\b401\b|token (is )?expired"),
        ("permission", r"INSUFFICIENT_PERMISSIONS|PERMISSION_DENIED|user does not have \w+"),
    ),
    missing_grants=missing_grant_rows(r"user does not have (\w+(?: \w+)?) on (\w+ '[^']+')"),
    namespace=Namespace("databricks", ("host",)),
    labels=IdentityLabels(recorded_in="the query history's statement text"),
)
