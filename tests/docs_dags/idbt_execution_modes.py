"""docs/execution-modes.md's example: a task group whose model tasks run in the warm worker, and one task that
starts its own dbt process. tests/integration/test_doc_dags.py parses it with Airflow's DagBag."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ.get("IDBT_EXAMPLE_PROJECT_DIR", Path(__file__).parents[2] / "dags" / "example_project"))

with DAG("idbt_doc_execution_modes", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    DbtIdentityTaskGroup(
        group_id="marts",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id="idbt_dev",
        profiles_dir=PROJECT_DIR,
        select="path:models/marts",
        execution_mode="warm",  # every model task of the group
    )
    DbtIdentityOperator(
        task_id="stg_orders",
        model="stg_orders",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id="idbt_dev",
        profiles_dir=PROJECT_DIR,
        execution_mode="subprocess",  # one task
    )
