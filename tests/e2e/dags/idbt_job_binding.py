"""Test DAGs (airflow): identity connections bound to jobs (DAG ids, tags, bundles), and one DAG whose identity
connection and dbt target follow the deployment's `idbt_environment` Variable."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])
START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMON: dict[str, Any] = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "profiles_dir": PROJECT_DIR,
    "pool": "idbt_duckdb",
    "min_token_ttl": 300,
}

# Each connection is bound to jobs by the platform team (see the test's connections); this DAG matches them all.
with DAG("team_a_daily", schedule=None, start_date=START, catchup=False, tags=["finance"]):
    DbtIdentityOperator(task_id="by_dag_id", model="stg_customers", identity_conn_id="idbt_team_a", **COMMON)
    DbtIdentityOperator(task_id="by_tag", model="stg_orders", identity_conn_id="idbt_finance", **COMMON)
    DbtIdentityOperator(task_id="by_bundle", model="stg_payments", identity_conn_id="idbt_platform_bundle", **COMMON)

# Names the same connections and matches none of their bindings: every task is refused on try 1, retries or not.
with DAG(
    "intruder",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["marketing"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
):
    DbtIdentityOperator(task_id="borrow_team_a", model="stg_customers", identity_conn_id="idbt_team_a", **COMMON)
    DbtIdentityOperator(task_id="borrow_finance", model="stg_orders", identity_conn_id="idbt_finance", **COMMON)
    DbtIdentityOperator(
        task_id="borrow_other_bundle", model="stg_payments", identity_conn_id="idbt_team_b_bundle", **COMMON
    )

# docs/environments.md shows this DAG: one file, bound to dev, staging or prod by the deployment's Variable.
with DAG("idbt_environments", schedule=None, start_date=START, catchup=False, tags=["idbt"]):
    DbtIdentityOperator(
        task_id="customers",
        model="stg_customers",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        profiles_dir=PROJECT_DIR,
        identity_conn_id="idbt_{{ var.value.get('idbt_environment', 'dev') }}",
        target="{{ var.value.get('idbt_environment', 'dev') }}",
        pool="idbt_duckdb",
    )
