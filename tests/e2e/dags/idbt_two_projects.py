"""Test DAG (airflow): two dbt projects in one DAG file, each a task group over its own manifest in storage."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup

BUCKET = os.environ["IDBT_MANIFEST_BUCKET"]
EXAMPLE = Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])
PACKAGED = Path(os.environ["IDBT_PACKAGED_PROJECT_DIR"])
TASKS = {"pool": "idbt_duckdb", "retries": 0}

with DAG("idbt_two_projects", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityTaskGroup(
        group_id="example",
        project_dir=EXAMPLE,
        manifest_path=f"{BUCKET}/example/",
        identity_conn_id="idbt_dev",
        profiles_dir=EXAMPLE,
        select="stg_customers",
        tests="none",
        operator_kwargs=TASKS,
    )
    DbtIdentityTaskGroup(
        group_id="packaged",
        project_dir=PACKAGED,
        manifest_path=f"{BUCKET}/packaged/manifest.json",
        identity_conn_id="idbt_dev",
        profiles_dir=PACKAGED,
        tests="none",
        operator_kwargs=TASKS,
    )
