"""Test DAG (airflow): two models of one project, each run as a different identity (OIDC and AWS web identity)."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])
COMMON = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "profiles_dir": PROJECT_DIR,
    "pool": "idbt_duckdb",
    "min_token_ttl": 300,
}

with DAG("idbt_two_identities", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityOperator(task_id="customers_as_oidc", model="stg_customers", identity_conn_id="idbt_e2e_oidc", **COMMON)
    DbtIdentityOperator(task_id="orders_as_aws", model="stg_orders", identity_conn_id="idbt_e2e_aws", **COMMON)
