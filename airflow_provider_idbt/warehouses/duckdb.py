"""DuckDB (dbt-duckdb): the embedded default warehouse; a file path and no credential."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import IdentityLabels, Namespace, ProfileFields, WarehouseSpec, failure_rows

PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('IDBT_DUCKDB_PATH', 'analytics.duckdb') }}"
      threads: 1
"""

WAREHOUSE = WarehouseSpec(
    adapter="duckdb",
    extra="duckdb",
    title="DuckDB",
    profile=ProfileFields(
        required=("path",),
        optional={
            "threads": 1,
            "schema": None,
            "database": None,
            "extensions": None,
            "settings": None,
            "attach": None,
            "plugins": None,
            "external_root": None,
        },
    ),
    profile_snippet=PROFILE_SNIPPET,
    failures=failure_rows("duckdb", ("permission", r"Permission Error")),
    namespace=Namespace("duckdb", ("path",)),
    labels=IdentityLabels(recorded_in="nowhere on the warehouse side: DuckDB keeps no statement history"),
)
