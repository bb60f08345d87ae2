"""Test DAGs (airflow): the hooks project's project hooks once per DAG run.

`idbt_run_hooks` wires it by hand: on-run-start once, two models without project hooks, on-run-end once.
`idbt_run_hooks_group` leaves it to the task group's default, run_hooks="auto": on-run-start (no hook reads the
invocation's results) gets its own first task; on-run-end, whose package hook uploads the results, stays in
every model task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup
from airflow_provider_idbt.operators.dbt_hooks import DbtIdentityHooksOperator

PROJECT_DIR = Path(os.environ["IDBT_HOOKS_PROJECT_DIR"])
COMMON: dict[str, Any] = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "identity_conn_id": "idbt_pg_transformer",
    "profile_args": {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": int(os.environ["IDBT_PG_PORT"]),
        "user": "svc_transformer",
        "dbname": os.environ["IDBT_PG_DB"],
        "schema": "analytics",
    },
    # The identity's login role inherits nothing: every task, hooks included, works as its mapped role.
    "warehouse_role_from_identity": True,
}

with DAG("idbt_run_hooks", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    start = DbtIdentityHooksOperator(task_id="on_run_start", hook_type="on-run-start", **COMMON)
    models = [
        DbtIdentityOperator(task_id=name, model=name, run_hooks=False, **COMMON) for name in ("model_a", "model_b")
    ]
    # Last, whatever the models did, as dbt runs on-run-end after failed models too.
    end = DbtIdentityHooksOperator(task_id="on_run_end", hook_type="on-run-end", trigger_rule="all_done", **COMMON)
    start >> models >> end

with DAG("idbt_run_hooks_group", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityTaskGroup(
        group_id="hooks",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id="idbt_pg_transformer",
        select=["model_a", "model_b"],
        tests="none",
        operator_kwargs={key: COMMON[key] for key in ("profile_args", "warehouse_role_from_identity")},
    )
