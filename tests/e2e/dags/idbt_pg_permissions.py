"""Test DAG (airflow): the postgres project under four identities: allowed, denied by GRANTs, by meta, stale token."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ["IDBT_PG_PROJECT_DIR"])
MANIFEST = PROJECT_DIR / "target" / "manifest.json"


def profile(user: str) -> dict[str, object]:
    return {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": int(os.environ["IDBT_PG_PORT"]),
        "user": user,
        "dbname": os.environ["IDBT_PG_DB"],
        "schema": "analytics",
    }


COMMON = {
    "project_dir": PROJECT_DIR,
    "manifest_path": MANIFEST,
    "warehouse_role_from_identity": True,
    # Permission problems must fail on the first try however many retries a task has.
    "retries": 3,
    "retry_delay": 1,
}

with DAG("idbt_pg_permissions", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    allowed = DbtIdentityTaskGroup(
        group_id="transformer",
        project_dir=PROJECT_DIR,
        manifest_path=MANIFEST,
        identity_conn_id="idbt_pg_transformer",
        operator_kwargs={
            "profile_args": profile("svc_transformer"),
            "warehouse_role_from_identity": True,
            "retries": 0,
        },
    )
    denied_by_grants = DbtIdentityOperator(
        task_id="intern_payments",
        model="stg_payments",
        identity_conn_id="idbt_pg_intern",
        profile_args=profile("svc_intern"),
        **COMMON,
    )
    # Its connection has no role_mapping: the deployment-wide [idbt] role_mapping applies.
    denied_by_meta = DbtIdentityOperator(
        task_id="auditor_finance",
        model="finance_summary",
        identity_conn_id="idbt_pg_auditor",
        profile_args=profile("svc_auditor"),
        **COMMON,
    )
    stale_token = DbtIdentityOperator(
        task_id="rotated_token",
        model="stg_orders",
        identity_conn_id="idbt_pg_rotated",
        profile_args=profile("svc_rotated"),
        **COMMON,
    )
    allowed >> stale_token
