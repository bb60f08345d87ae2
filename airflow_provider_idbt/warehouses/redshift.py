"""Amazon Redshift (dbt-redshift): lineage naming only, so a user's own profile still names its datasets."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import IdentityLabels, Namespace, WarehouseSpec

WAREHOUSE = WarehouseSpec(
    adapter="redshift",
    title="Amazon Redshift",
    namespace=Namespace("redshift", ("host", "port"), {"port": 5439}),
    labels=IdentityLabels(recorded_in="`STL_QUERY` / `SYS_QUERY_HISTORY` query text"),
)
