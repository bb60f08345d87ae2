"""The docs' DAG examples (tests/docs_dags/) parsed by Airflow's DagBag; each warehouse page's generated profile
loaded by dbt with the adapter's own credentials class (dbt's virtualenv), and the execution modes resolved."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.dbt.profiles import login_args, render_profile, write_profiles_dir
from tests.fixtures.dbt_projects import REPO, DbtProject
from tests.fixtures.dbt_venv import load_profile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DOC_DAGS = REPO / "tests" / "docs_dags"
DOC_DAG_FILES = ("idbt_warehouse_examples.py", "idbt_execution_modes.py")  # every file of the folder
WAREHOUSES = {
    "snowflake": "dbt.adapters.snowflake",
    "fabric": "dbt.adapters.fabric",
    "postgres": "dbt.adapters.postgres",
    "postgres_rds": "dbt.adapters.postgres",
    "redshift": "dbt.adapters.redshift",
    "databricks": "dbt.adapters.databricks",
    "sqlserver": "dbt.adapters.sqlserver",
    "bigquery": "dbt.adapters.bigquery",
}
_ENV_VAR = re.compile(r"env_var\(\s*['\"]+([A-Z0-9_]+)")


@pytest.fixture(scope="module")
def dagbag(example_project: DbtProject) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    before = os.environ.get("IDBT_EXAMPLE_PROJECT_DIR")
    os.environ["IDBT_EXAMPLE_PROJECT_DIR"] = str(example_project.project_dir)
    try:
        bag = DagBag(dag_folder=str(DOC_DAGS), safe_mode=False)
    finally:
        if before is None:
            os.environ.pop("IDBT_EXAMPLE_PROJECT_DIR")
        else:
            os.environ["IDBT_EXAMPLE_PROJECT_DIR"] = before
    return bag


def test_every_doc_dag_parses(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert sorted(path.name for path in DOC_DAGS.glob("*.py")) == sorted(DOC_DAG_FILES)
    assert {f"idbt_doc_{name}" for name in WAREHOUSES} | {"idbt_doc_execution_modes"} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("name", sorted(WAREHOUSES))
def test_a_warehouse_pages_profile_is_one_dbt_loads(dagbag: Any, name: str, tmp_path: Path) -> None:
    task = dagbag.dags[f"idbt_doc_{name}"].get_task("orders")
    fields = dict(task.profile_args)
    adapter = str(fields.pop("type"))
    role = "transformer" if task.warehouse_role_from_identity else None
    profile = render_profile(adapter, fields, "idbt_example", role=role)
    folder = write_profiles_dir(profile, tmp_path / "profiles")
    text = (folder / "profiles.yml").read_text()
    # What the task's login step would export: placeholders here, dbt only checks they are set.
    env = {variable: "placeholder" for variable in _ENV_VAR.findall(text)}
    env.update({"IDBT_LOGIN_EXPIRES_ON": "1893456000"})
    loaded = load_profile(folder, "idbt_example", env=env)
    assert loaded["type"] == adapter
    assert loaded["credentials_class"].startswith(WAREHOUSES[name] + ".")
    for field in ("cluster_identifier", "db_user", "iam_auth", "region"):
        assert field not in text  # login fields are read by the login step, never written into profiles.yml
    if role:
        assert role in text


def test_login_fields_reach_the_login_step(dagbag: Any) -> None:
    redshift = dict(dagbag.dags["idbt_doc_redshift"].get_task("orders").profile_args)
    assert login_args("redshift", redshift) | {"cluster_identifier": "analytics", "db_user": "dbt_orders"} == (
        login_args("redshift", redshift)
    )
    rds = dict(dagbag.dags["idbt_doc_postgres_rds"].get_task("orders").profile_args)
    assert login_args("postgres", rds)["iam_auth"] == "rds" and login_args("postgres", rds)["region"] == "eu-west-1"


def test_the_execution_modes_example(dagbag: Any) -> None:
    dag = dagbag.dags["idbt_doc_execution_modes"]
    group_tasks = [task for task in dag.tasks if task.task_id.startswith("marts.")]
    assert group_tasks and all(task.execution_mode == "warm" for task in group_tasks)
    assert dag.get_task("stg_orders").execution_mode == "subprocess"
