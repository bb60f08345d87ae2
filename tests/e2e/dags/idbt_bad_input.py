"""Test DAG (airflow): provider tasks that must fail fast, on their first try, with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])
PG_PROJECT_DIR = Path(os.environ["IDBT_PG_PROJECT_DIR"])
COMMON = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "profiles_dir": PROJECT_DIR,
    "retries": 2,
    "retry_delay": 1,
}

with DAG("idbt_bad_input", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityOperator(task_id="missing_connection", model="stg_customers", identity_conn_id="no_such_conn", **COMMON)
    DbtIdentityOperator(task_id="unknown_model", model="stg_custmers", identity_conn_id="idbt_dev", **COMMON)
    # A transient failure: retried (once here), unlike the permanent ones above.
    DbtIdentityOperator(
        task_id="idp_unreachable",
        model="stg_customers",
        identity_conn_id="idbt_unreachable",
        **{**COMMON, "retries": 1},
    )
    # dbt's adapter is not installed where the task runs dbt: which extra to install, before any token is minted.
    DbtIdentityOperator(
        task_id="adapter_missing",
        model="stg_customers",
        identity_conn_id="idbt_dev",
        **{**COMMON, "profiles_dir": None},
        profile_args={"type": "snowflake", "account": "xy12345", "user": "svc", "database": "DW", "schema": "S"},
    )
    DbtIdentityOperator(
        task_id="missing_target", model="stg_customers", identity_conn_id="idbt_dev", target="prod", **COMMON
    )
    # Nothing listens on the warehouse's port: transient, so retried (once here), with a clear message.
    DbtIdentityOperator(
        task_id="warehouse_unreachable",
        model="stg_orders",
        identity_conn_id="idbt_dev",
        project_dir=PG_PROJECT_DIR,
        manifest_path=PG_PROJECT_DIR / "target" / "manifest.json",
        profile_args={
            "type": "postgres",
            "host": "127.0.0.1",
            "port": int(os.environ["IDBT_CLOSED_PORT"]),
            "user": "svc",
            "dbname": "dw",
            "schema": "analytics",
            "connect_timeout": 5,
        },
        retries=1,
        retry_delay=1,
    )
