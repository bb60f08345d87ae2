"""Example Airflow DAG: the idbt example dbt project, one task per model, each task with its own identity token.

`idbt demo` runs it on DuckDB with the development identity provider. Point `identity_conn_id` at a real
`idbt_oidc` connection (Okta, Keycloak, Entra ID, ...) and the same DAG runs with production identities.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ.get("IDBT_EXAMPLE_PROJECT_DIR", Path(__file__).parent / "example_project"))

with DAG(
    dag_id="idbt_example",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["idbt", "example"],
    doc_md=__doc__,
):
    DbtIdentityTaskGroup(
        group_id="example_project",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",  # built by `idbt prepare`, never parsed in a task
        identity_conn_id="idbt_dev",  # an idbt_oidc connection; idbt_aws, idbt_google and idbt_azure work alike
        profiles_dir=PROJECT_DIR,  # its profiles.yml reads the token with env_var('DBT_ENV_SECRET_IDBT_TOKEN')
        operator_kwargs={"pool": "idbt_duckdb", "retries": 1},  # any BaseOperator argument, for every task
    )
