"""Test DAGs (airflow): a generated 50-model dbt project run as a team runs it, and a DAG scheduled on one mart.

`idbt_nightly` runs the nightly marts and everything upstream of them (seeds and a snapshot included), each
node's tests in a task after it, in task groups per folder, each model's table declared as an Asset;
`idbt_after_revenue` runs whenever the mart it is scheduled on has been rebuilt. docs/authoring.md quotes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_idbt import DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ["IDBT_SCALE_PROJECT_DIR"])
START = pendulum.datetime(2026, 1, 1, tz="UTC")
# The deployment's environment names its identity connection and its dbt target. It is read when the file is
# parsed: the Assets the task group declares name the warehouse of that target.
ENVIRONMENT = Variable.get("idbt_environment", default="dev")

with DAG("idbt_nightly", schedule=None, start_date=START, catchup=False, tags=["idbt", "nightly"]):
    analytics = DbtIdentityTaskGroup(
        group_id="analytics",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id=f"idbt_{ENVIRONMENT}",
        profiles_dir=PROJECT_DIR,
        execution_mode="warm",
        select="+tag:nightly",
        exclude="tag:deprecated",
        tests="after_each",
        resource_types=["seed", "snapshot", "model"],
        folder_groups=True,
        assets=True,
        run_hooks="auto",
        node_settings={"mart_0000": {"retries": 3}},
        operator_kwargs={"target": ENVIRONMENT, "pool": "idbt_warehouse", "retries": 1},
    )

revenue = analytics.model_tasks["model.idbt_bench.mart_0000"]

with DAG("idbt_after_revenue", schedule=revenue.outlets, start_date=START, catchup=False, tags=["idbt"]):

    @task
    def read_revenue(triggering_asset_events: Any = None) -> list[str]:
        """Name the task whose run of the mart triggered this DAG run."""
        events = [event for batch in triggering_asset_events.values() for event in batch]
        return [f"{event.source_dag_id}.{event.source_task_id}" for event in events]

    read_revenue()
