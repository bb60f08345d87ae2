"""Test DAG (airflow): one node per task with each dbt command, and a templated full_refresh."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, chain

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])
COMMON = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "profiles_dir": PROJECT_DIR,
    "identity_conn_id": "idbt_dev",
    "pool": "idbt_duckdb",
}

with DAG(
    "idbt_commands",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"full_refresh": True},
):
    chain(
        DbtIdentityOperator(
            task_id="seed_orders", command="seed", model="orders", full_refresh="{{ params.full_refresh }}", **COMMON
        ),
        DbtIdentityOperator(task_id="build_order_totals", command="build", model="order_totals", **COMMON),
        DbtIdentityOperator(task_id="test_customer_orders", command="test", model="customer_orders", **COMMON),
    )
