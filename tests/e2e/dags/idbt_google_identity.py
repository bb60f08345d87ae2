"""Test DAG (airflow): one model run as a Google identity (workload identity federation + impersonation)."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])

with DAG("idbt_google_identity", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityOperator(
        task_id="customers_as_google",
        model="stg_customers",
        identity_conn_id="idbt_e2e_google",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        profiles_dir=PROJECT_DIR,
        pool="idbt_duckdb",
        min_token_ttl=300,
    )
