"""Test DAGs (airflow): warm-mode model tasks that the warm-failure tests kill, cancel and re-deploy under."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])
COMMON = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "profiles_dir": PROJECT_DIR,
    "identity_conn_id": "idbt_dev",
    "execution_mode": "warm",
    "pool": "idbt_duckdb",
    "retries": 1,
    "retry_delay": timedelta(seconds=1),
}
START = pendulum.datetime(2026, 1, 1, tz="UTC")

# A model that sleeps while the test's marker file exists: the test kills or cancels it mid-run, then removes
# the marker so the retry (or the next run) is quick.
with DAG("idbt_warm_slow", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(task_id="slow_model", model="slow_model", **COMMON)

with DAG("idbt_warm_quick", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(task_id="stg_orders", model="stg_orders", **COMMON)
