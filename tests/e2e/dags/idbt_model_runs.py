"""Test DAGs (airflow) for the "Model runs" view: on the permissioned PostgreSQL warehouse, a success, a refusal by
the warehouse's GRANTs, a refusal by the model's meta, and a model that fails its first try and passes its retry;
and a second team's DAG (one success) for per-DAG access checks.

Environment: IDBT_MODEL_RUNS_PROJECT_DIR (a copy of tests/fixtures/pg_project with models/flaky/ added),
IDBT_MODEL_RUNS_PG_PORT and IDBT_MODEL_RUNS_PG_DB (the warehouse), connections idbt_pg_transformer,
idbt_pg_intern and idbt_pg_auditor (tests/fixtures/model_runs_airflow.py sets them all).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_MODEL_RUNS_PROJECT_DIR"])
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def profile(user: str) -> dict[str, Any]:
    return {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": int(os.environ["IDBT_MODEL_RUNS_PG_PORT"]),
        "user": user,
        "dbname": os.environ["IDBT_MODEL_RUNS_PG_DB"],
        "schema": "analytics",
        "connect_timeout": 10,
    }


def model_task(task_id: str, model: str, user: str, **kwargs: Any) -> DbtIdentityOperator:
    return DbtIdentityOperator(
        task_id=task_id,
        model=model,
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id=f"idbt_pg_{user.removeprefix('svc_')}",
        profile_args=profile(user),
        warehouse_role_from_identity=True,
        **kwargs,
    )


with DAG("idbt_model_runs", schedule=None, start_date=START, catchup=False, tags=["idbt-model-runs"]):
    customers = model_task("customers", "stg_customers", "svc_transformer", retries=0)
    # The intern's role may not read raw.payments: the warehouse refuses, on the first try despite retries.
    model_task("intern_payments", "stg_payments", "svc_intern", retries=3, retry_delay=timedelta(seconds=1))
    # finance_summary requires the finance_admin role (meta.idbt); the auditor maps to transformer only.
    model_task("auditor_finance", "finance_summary", "svc_auditor", retries=0)
    # 1 / (try_number - 1): division by zero on try 1, a clean build on try 2.
    flaky = model_task(
        "flaky_orders",
        "flaky_orders",
        "svc_transformer",
        retries=1,
        retry_delay=timedelta(seconds=1),
        dbt_vars={"idbt_flaky_divisor": "{{ ti.try_number - 1 }}"},
    )
    # The test warehouse takes one password per login role, the identity's newest token (a real warehouse takes
    # every valid token): two tasks of one identity at once would refuse the older token. One after the other.
    customers >> flaky

with DAG("idbt_model_runs_team_b", schedule=None, start_date=START, catchup=False, tags=["idbt-model-runs"]):
    model_task("orders", "stg_orders", "svc_auditor", retries=0)
