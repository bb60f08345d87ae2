"""Test DAGs (airflow): a run with a success, permission mismatches (pre-flight and warehouse), a retried failure,
a listener fault and a task that is not the provider's; and a run whose model never gets an identity."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_idbt import DbtIdentityOperator

PROJECT_DIR = Path(os.environ["IDBT_AUDIT_PROJECT_DIR"])
COMMON: dict[str, Any] = {
    "project_dir": PROJECT_DIR,
    "manifest_path": PROJECT_DIR / "target" / "manifest.json",
    "profiles_dir": PROJECT_DIR,
    "identity_conn_id": "idbt_dev",
    "retries": 0,
}
START = pendulum.datetime(2026, 1, 1, tz="UTC")


class ListenerFaultOperator(DbtIdentityOperator):
    """Test-only: the listener's event building raises for this task, which must still succeed."""

    def idbt_event_model(self) -> dict[str, Any]:
        raise RuntimeError("injected listener fault")


with DAG("idbt_lineage_audit", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(task_id="paid_orders", model="paid_orders", **COMMON)
    DbtIdentityOperator(task_id="payroll_report", model="payroll_report", **COMMON)
    DbtIdentityOperator(task_id="salaries_export", model="salaries_export", **COMMON)
    DbtIdentityOperator(
        task_id="flaky_total", model="flaky_total", **{**COMMON, "retries": 1, "retry_delay": timedelta(seconds=1)}
    )
    ListenerFaultOperator(task_id="listener_fault", model="stg_customers", **COMMON)

    @task
    def not_a_model() -> None:
        print("a plain Python task")

    not_a_model()

with DAG("idbt_audit_incomplete", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(task_id="no_identity", model="stg_orders", **{**COMMON, "identity_conn_id": "idbt_unreachable"})
