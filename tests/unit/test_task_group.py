"""DbtIdentityTaskGroup builds one task per model with the manifest's edges, at DAG-parse time."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup
from tests.fixtures.dbt_projects import DbtProject


def _dag(project: DbtProject, manifest: Path | None = None) -> tuple[DAG, DbtIdentityTaskGroup]:
    with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        group = DbtIdentityTaskGroup(
            "models",
            project_dir=project.project_dir,
            manifest_path=manifest or project.manifest_path,
            identity_conn_id="idbt_dev",
            profiles_dir=project.profiles_dir,
            operator_kwargs={"pool": "idbt_duckdb", "retries": 2},
        )
    return dag, group


def test_one_task_per_model_with_manifest_edges(example_project: DbtProject) -> None:
    dag, group = _dag(example_project)
    manifest = json.loads(example_project.manifest_path.read_text())
    models = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    assert set(group.model_tasks) == set(models)
    for uid, task in group.model_tasks.items():
        assert isinstance(task, DbtIdentityOperator)
        assert task.task_id == f"models.{models[uid]['name']}"
        assert task.model == uid and task.pool == "idbt_duckdb" and task.retries == 2
        parents = {p for p in models[uid]["depends_on"]["nodes"] if p in models}
        assert {t.task_id for t in task.upstream_list} == {group.model_tasks[p].task_id for p in parents}
    assert any(task.upstream_list for task in group.model_tasks.values()), "the example has refs"
    assert len(dag.tasks) == len(models)


def test_missing_manifest_is_a_clear_parse_error(example_project: DbtProject, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"task group `models`.*dbt parse"):
        _dag(example_project, tmp_path / "target" / "manifest.json")


def test_operator_needs_a_profile_source() -> None:
    with pytest.raises(ValueError, match=r"profiles_dir .* or profile_args"):
        DbtIdentityOperator(task_id="t", model="m", project_dir=".", manifest_path="m.json", identity_conn_id="c")
