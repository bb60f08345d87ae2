"""Test DAG (airflow): one model run as a Google identity whose subject is the worker's AWS role (MWAA-style).

The task's connection takes its subject token from `sts:GetWebIdentityToken` (subject_token_source `aws_outbound`,
signed with the worker's own AWS credentials) and exchanges it through Google workload identity federation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])

with DAG(
    "idbt_aws_outbound_identity", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False
):
    DbtIdentityOperator(
        task_id="customers_as_aws_role_in_google",
        model="stg_customers",
        identity_conn_id="idbt_e2e_aws_outbound",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        profiles_dir=PROJECT_DIR,
        pool="idbt_duckdb",
        min_token_ttl=300,
    )
