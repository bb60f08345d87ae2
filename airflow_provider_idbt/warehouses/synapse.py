"""Azure Synapse (dbt-synapse): the SQL engine's error rows; no generated profile (dbt-synapse is not tested here).

dbt-synapse needs dbt-fabric 1.9 while this provider's dbt environment carries dbt-fabric 1.11, so it is no
extra of ours; users bring their own profiles.yml (docs/warehouses/synapse.md).
"""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import IdentityLabels, WarehouseSpec
from airflow_provider_idbt.warehouses.sqlserver import SQL_ENGINE_MISSING_GRANTS, sql_engine_failures

WAREHOUSE = WarehouseSpec(
    adapter="synapse",
    title="Azure Synapse",
    failures=sql_engine_failures("synapse"),
    missing_grants=SQL_ENGINE_MISSING_GRANTS,
    labels=IdentityLabels(recorded_in="`sys.dm_pdw_exec_requests.command` (dedicated SQL pools)"),
)
