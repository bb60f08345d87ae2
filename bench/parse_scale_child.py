"""One DAG build in a fresh interpreter, as a DAG-processor child parses a DAG file (bench/parse_scale.py runs it).

Modes: ``floor`` (EmptyOperators with the group's tasks and edges, from a precomputed list, wired with Airflow's
dependency calls as a DAG author writes them), ``floor_direct`` (the same, each edge recorded as the group records
it: straight into the two tasks' id sets, without the DAG check of each call), ``idbt``
(DbtIdentityTaskGroup), ``cosmos`` (astronomer-cosmos ``DbtDag``, ``LoadMode.DBT_MANIFEST``) and ``graph`` (an
idbt build that also writes its tasks and edges for the floor). Prints one JSON line prefixed with ``RESULT``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.dag_parse import HEAVY

GROUP_ID = "project"
MARKER = "RESULT "
MODES = ("floor", "floor_direct", "idbt", "cosmos", "graph")


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _floor(subject: dict[str, Any], direct: bool = False) -> Callable[[], Any]:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, TaskGroup

    # Read before the clock starts: the floor is what Airflow costs for these tasks and edges, nothing else.
    graph = json.loads(Path(subject["graph"]).read_text())

    def build() -> Any:
        # Each task wired as it is made, in the group's own order, with one call per task (as the group does);
        # an edge from a task made later (the group's on-run-start task) waits for that task.
        with DAG(dag_id="parse_floor", schedule=None) as dag, TaskGroup(group_id=GROUP_ID):
            tasks: dict[str, Any] = {}
            later: dict[str, list[str]] = {}
            for task_id, upstream in graph:
                task = tasks[task_id] = EmptyOperator(task_id=task_id)
                ready = [tasks[parent] for parent in upstream if parent in tasks]
                if ready and direct:
                    for parent in ready:  # as airflow_provider_idbt.task_group._wire records an edge
                        parent.downstream_task_ids.add(task.node_id)
                        task.upstream_task_ids.add(parent.node_id)
                elif ready:
                    ready >> task
                for parent in upstream:
                    if parent not in tasks:
                        later.setdefault(parent, []).append(task_id)
            for parent, children in later.items():
                tasks[parent] >> [tasks[child] for child in children]
        return dag

    return build


def _idbt(subject: dict[str, Any]) -> Callable[[], Any]:
    from airflow.sdk import DAG

    from airflow_provider_idbt import DbtIdentityTaskGroup

    def build() -> Any:
        with DAG(dag_id="parse_idbt", schedule=None) as dag:
            DbtIdentityTaskGroup(
                group_id=GROUP_ID,
                project_dir=subject["project_dir"],
                manifest_path=subject["manifest"],
                identity_conn_id="idbt_bench",
                profiles_dir=subject["profiles_dir"],
            )
        return dag

    return build


def _cosmos(subject: dict[str, Any]) -> Callable[[], Any]:
    from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, LoadMode

    def build() -> Any:
        # Cosmos's defaults otherwise, as for our group: seeds as tasks, each model's tests after it.
        return DbtDag(
            dag_id="parse_cosmos",
            schedule=None,
            project_config=ProjectConfig(
                dbt_project_path=subject["project_dir"],
                manifest_path=subject["manifest"],
                project_name=subject["project_name"],
            ),
            profile_config=ProfileConfig(
                profile_name=subject["profile"],
                target_name=subject["target"],
                profiles_yml_filepath=os.path.join(subject["profiles_dir"], "profiles.yml"),
            ),
            execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL),
            render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
        )

    return build


def _graph(dag: Any) -> list[list[Any]]:
    """The group's tasks in the order it made them, with their upstream tasks; ids relative to the group."""
    prefix = GROUP_ID + "."
    return [
        [task.task_id.removeprefix(prefix), sorted(up.removeprefix(prefix) for up in task.upstream_task_ids)]
        for task in dag.task_dict.values()
    ]


def run(mode: str, subject: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    import airflow.sdk  # what every DAG file imports anyway

    sdk_done = time.perf_counter()
    before = set(sys.modules)
    makers: dict[str, Callable[[dict[str, Any]], Callable[[], Any]]] = {
        "floor": _floor,
        "floor_direct": lambda subject: _floor(subject, direct=True),
        "idbt": _idbt,
        "graph": _idbt,
        "cosmos": _cosmos,
    }
    build = makers[mode](subject)
    imported = time.perf_counter()
    rss_before = _rss_mib()
    built, cpu = time.perf_counter(), time.process_time()
    dag = build()
    done, cpu_done = time.perf_counter(), time.process_time()
    result: dict[str, Any] = {
        "mode": mode,
        "import_sdk_s": sdk_done - start,
        "import_s": imported - sdk_done,
        "build_s": done - built,
        "build_cpu_s": cpu_done - cpu,
        "tasks": len(dag.task_dict),
        "rss_before_mib": rss_before,
        "peak_rss_mib": _peak_rss_mib(),
        "assets": sum(len(task.outlets) for task in dag.task_dict.values()),
        "modules": len(set(sys.modules) - before),
        "versions": {"apache-airflow": airflow.__version__},
    }
    if mode == "cosmos":
        result["versions"]["astronomer-cosmos"] = sys.modules["cosmos"].__version__
    if mode in ("idbt", "graph"):
        result["heavy"] = sorted({name.split(".", 1)[0] for name in set(sys.modules) - before} & set(HEAVY))
    if mode == "graph":
        Path(subject["graph"]).write_text(json.dumps(_graph(dag)))
    return result


def main(argv: list[str]) -> int:
    mode, subject = argv[0], json.loads(argv[1])
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    print(MARKER + json.dumps(run(mode, subject)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
