"""Where a DbtIdentityTaskGroup build spends its CPU time, in a fresh interpreter (bench/parse_scale.py runs it).

``first_asset``: what the first Airflow Asset of a process costs with the interpreter's installed providers
(Airflow discovers every provider's asset URI handlers then). ``phases``: one build of the group with its steps
timed (slim index, selection, plan, operators, Assets, the rest: the DAG object and Airflow's dependency calls).
``operators``: what constructing one task costs, EmptyOperator beside the provider's operators with the arguments
the group passes, 2,000 tasks in a task group. The timers' own cost is small against the steps; the timed builds
of bench/parse_scale_child.py have none.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.parse_scale_child import GROUP_ID, MARKER

OPERATOR_TASKS = 2000


def _timed(owner: Any, name: str, spent: dict[str, float], label: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.process_time() - start

    setattr(owner, name, wrapper)


def phases(subject: dict[str, Any]) -> dict[str, Any]:
    import airflow.sdk

    from airflow_provider_idbt import task_group

    spent: dict[str, float] = {}
    # Called on the class (ManifestIndex.load(path)), so a plain function stands in for the classmethod.
    _timed(task_group.ManifestIndex, "load", spent, "slim index")
    _timed(task_group, "_select", spent, "selection")
    _timed(task_group, "plan_tasks", spent, "plan")
    _timed(task_group, "_namespace", spent, "Asset namespace (profiles.yml)")
    _timed(task_group.DbtIdentityTaskGroup, "_make_task", spent, "operators")
    _timed(task_group._Assets, "of", spent, "Assets")
    start = time.process_time()
    with airflow.sdk.DAG(dag_id="parse_phases", schedule=None):
        task_group.DbtIdentityTaskGroup(
            group_id=GROUP_ID,
            project_dir=subject["project_dir"],
            manifest_path=subject["manifest"],
            identity_conn_id="idbt_bench",
            profiles_dir=subject["profiles_dir"],
        )
    total = time.process_time() - start
    spent["operators"] -= spent.get("Assets", 0.0)  # Assets are made while the operators' arguments are
    spent["the rest (DAG, dependency calls)"] = total - sum(spent.values())
    return {"total_s": total, "phases_s": spent}


def operators(subject: dict[str, Any]) -> dict[str, Any]:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset, TaskGroup

    from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTestOperator

    asset = Asset(uri="duckdb:///bench/main/model")
    common = {
        "project_dir": subject["project_dir"],
        "manifest_path": subject["manifest"],
        "manifest_conn_id": None,
        "identity_conn_id": "idbt_bench",
        "profiles_dir": subject["profiles_dir"],
        "doc_md": "A model.",
    }
    makers: dict[str, Callable[[int], Any]] = {
        "EmptyOperator": lambda i: EmptyOperator(task_id=f"t{i}"),
        "DbtIdentityOperator": lambda i: DbtIdentityOperator(
            task_id=f"t{i}", model=f"m{i}", task_display_name=f"m{i}", outlets=[asset], inlets=[asset], **common
        ),
        "DbtIdentityTestOperator": lambda i: DbtIdentityTestOperator(
            task_id=f"t{i}", model=f"m{i}", tests=(f"test.m{i}",), task_display_name=f"m{i} · test", **common
        ),
    }
    per_task: dict[str, float] = {}
    gc.disable()  # as the group builds
    for round_no in range(3):
        for label, make in makers.items():
            with DAG(dag_id=f"parse_operators_{round_no}_{label}", schedule=None), TaskGroup(group_id=GROUP_ID):
                start = time.process_time()
                for i in range(OPERATOR_TASKS):
                    make(i)
                cost = (time.process_time() - start) / OPERATOR_TASKS
            per_task[label] = min(per_task.get(label, cost), cost)
    gc.enable()
    return {"per_task_s": per_task}


def first_asset(subject: dict[str, Any]) -> dict[str, Any]:
    from importlib.metadata import distributions

    import airflow.sdk

    before = set(sys.modules)
    start = time.perf_counter()
    airflow.sdk.Asset(uri="duckdb:///bench/main/model")
    spent = time.perf_counter() - start
    providers = sorted(
        name.removeprefix("apache-airflow-providers-")
        for name in {dist.metadata["Name"] for dist in distributions()}
        if name and name.startswith("apache-airflow-providers-")
    )
    return {"first_asset_s": spent, "modules": len(set(sys.modules) - before), "providers": providers}


def main(argv: list[str]) -> int:
    mode, subject = argv[0], json.loads(argv[1])
    probes = {"phases": phases, "operators": operators, "first_asset": first_asset}
    if mode not in probes:
        raise SystemExit(f"mode must be one of {', '.join(probes)}, not {mode!r}")
    print(MARKER + json.dumps({"mode": mode, **probes[mode](subject)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
