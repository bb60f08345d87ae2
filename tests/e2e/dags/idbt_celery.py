"""Test DAGs (airflow): one dbt project's models on CeleryExecutor, one worker queue per identity.

Team A's worker serves queue `team_a` and holds connection `idbt_team_a`; team B's serves `team_b` with
`idbt_team_b`. In `idbt_celery` the task group sends every model to team A by default; the project's `meta.idbt`
sends a staging and an intermediate model to team B, and `node_settings` here sends one mart.
`idbt_celery_misrouted` names team B's identity on team A's queue, which must fail. docs/celery.md quotes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ["IDBT_CELERY_PROJECT_DIR"])

with DAG("idbt_celery", schedule="@once", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityTaskGroup(
        group_id="models",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        profiles_dir=PROJECT_DIR,
        resource_types=["model"],
        tests="none",
        # A queue and the identity its workers hold go together: name both, everywhere a task is routed.
        identity_conn_id="idbt_team_a",
        operator_kwargs={"queue": "team_a"},
        node_settings={"mart_0001": {"queue": "team_b", "identity_conn_id": "idbt_team_b"}},
    )

# A task sent to a queue whose workers do not hold its identity: team B's connection on team A's queue. It must
# fail on team A's host, not run as anyone else.
with DAG("idbt_celery_misrouted", schedule="@once", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityOperator(
        task_id="stg_0000_as_team_b",
        model="stg_0000",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        profiles_dir=PROJECT_DIR,
        identity_conn_id="idbt_team_b",
        queue="team_a",
        retries=0,
    )
