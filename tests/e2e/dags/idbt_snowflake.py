"""Test DAG (airflow): a Snowflake model built with the task's federated token, and a login Snowflake refuses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_SF_PROJECT_DIR"])


def profile(port: str) -> dict[str, object]:
    # A stand-in for <account>.snowflakecomputing.com: plain HTTP on loopback, no retries of a refused login.
    return {
        "type": "snowflake",
        "account": "idbt-test",
        "database": "IDBT_DB",
        "warehouse": "IDBT_WH",
        "schema": "ANALYTICS",
        "host": "127.0.0.1",
        "port": int(port),
        "protocol": "http",
        "connect_retries": 0,
    }


COMMON: dict[str, Any] = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "identity_conn_id": "idbt_sf",
    "dbt_python": os.environ["IDBT_SF_DBT_PYTHON"],
    "retries": 0,
}

with DAG("idbt_snowflake", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    built = DbtIdentityOperator(
        task_id="orders", model="orders", profile_args=profile(os.environ["IDBT_SF_PORT"]), **COMMON
    )
    refused = DbtIdentityOperator(
        task_id="refused", model="order_totals", profile_args=profile(os.environ["IDBT_SF_REFUSING_PORT"]), **COMMON
    )
