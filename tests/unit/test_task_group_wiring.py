"""The task group wires its edges straight into the tasks' id sets (task_group._wire): the DAG must come out exactly
as ``set_upstream`` would make it, on each supported Airflow version, for every shape the group builds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup
from airflow_provider_idbt import task_group as task_group_module
from bench.synthetic_project import DUCKDB_ENV, SyntheticProject, prepare


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyntheticProject]:
    root = tmp_path_factory.mktemp("wiring") / "idbt_bench"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DUCKDB_ENV, str(root / "warehouse.duckdb"))
        built = prepare(root, 40, seed=False, extra_tests=True, on_run_start=["select 1"])
        yield built


def _build(project: SyntheticProject, **options: Any) -> DAG:
    with DAG("wiring", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        DbtIdentityTaskGroup(
            "project",
            project_dir=project.project_dir,
            manifest_path=project.manifest_path,
            identity_conn_id="idbt_dev",
            profiles_dir=project.profiles_dir,
            **options,
        )
    return dag


def _edges(dag: DAG) -> dict[str, tuple[list[str], list[str]]]:
    return {
        task_id: (sorted(task.upstream_task_ids), sorted(task.downstream_task_ids))
        for task_id, task in dag.task_dict.items()
    }


def _serialized(dag: DAG) -> dict[str, Any]:
    try:
        from airflow.serialization.serialized_objects import DagSerialization as serializer  # Airflow 3.2+
    except ImportError:
        from airflow.serialization.serialized_objects import SerializedDAG as serializer  # Airflow 3.1

    return serializer.to_dict(dag)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tests": "after_all", "folder_groups": True},
        {"tests": "build", "run_hooks": "per_task"},
        {"select": "+mart_0000", "tests": "none"},
    ],
    ids=["defaults", "after_all-folders", "build", "selection"],
)
def test_the_dag_equals_the_one_set_upstream_wires(
    project: SyntheticProject, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = _build(project, **options)
    with monkeypatch.context() as patch:
        patch.setattr(task_group_module, "_wire", lambda task, parents: task.set_upstream(parents))
        through_airflow = _build(project, **options)
    assert sum(len(task.upstream_task_ids) for task in direct.tasks) > len(direct.tasks) / 2  # a real graph
    assert _edges(direct) == _edges(through_airflow)
    assert _serialized(direct) == _serialized(through_airflow)


def test_a_parent_of_another_dag_is_left_to_airflow_to_refuse(project: SyntheticProject) -> None:
    with DAG("one", schedule=None) as first:
        group = DbtIdentityTaskGroup(
            "project",
            project_dir=project.project_dir,
            manifest_path=project.manifest_path,
            identity_conn_id="idbt_dev",
            profiles_dir=project.profiles_dir,
            tests="none",
        )
    with DAG("two", schedule=None):
        stranger = DbtIdentityTaskGroup(
            "project",
            project_dir=project.project_dir,
            manifest_path=project.manifest_path,
            identity_conn_id="idbt_dev",
            profiles_dir=project.profiles_dir,
            tests="none",
        )
    child, parent = next(iter(group.model_tasks.values())), next(iter(stranger.model_tasks.values()))
    with pytest.raises(RuntimeError, match="more than one Dag"):
        task_group_module._wire(child, [parent])
    assert parent.task_id not in child.upstream_task_ids
    assert first.task_dict  # the first DAG is unchanged by the refusal

