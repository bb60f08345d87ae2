"""hook_records reads a manifest's project hooks in dbt's order; hoist_plan decides what runs once per DAG run."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_idbt.dbt.run_hooks import hoist_plan, hook_records, hook_types_arg
from airflow_provider_idbt.errors import ConfigurationError, ManifestError


def _hook(package: str, hook_type: str, index: int, raw: str, macros: tuple[str, ...] = ()) -> tuple[str, dict]:
    uid = f"operation.{package}.{package}-{hook_type}-{index}"
    node = {
        "resource_type": "operation",
        "package_name": package,
        "tags": [hook_type],
        "index": index + 7,  # dbt rewrites it while running; the node id keeps the list position
        "raw_code": raw,
        "depends_on": {"macros": list(macros), "nodes": []},
    }
    return uid, node


def _manifest(*hooks: tuple[str, dict], macros: dict[str, Any] | None = None) -> dict[str, Any]:
    nodes: dict[str, Any] = {"model.proj.a": {"resource_type": "model", "package_name": "proj", "tags": []}}
    nodes.update(dict(hooks))
    return {"metadata": {"project_name": "proj"}, "nodes": nodes, "macros": macros or {}}


def _macro(sql: str, *calls: str) -> dict[str, Any]:
    return {"macro_sql": sql, "depends_on": {"macros": list(calls)}}


def test_records_follow_dbts_order_root_project_first_then_packages_by_name() -> None:
    manifest = _manifest(
        _hook("zeta_pkg", "on-run-start", 0, "select 1"),
        _hook("proj", "on-run-end", 0, "select 2"),
        _hook("alpha_pkg", "on-run-start", 1, "select 3"),
        _hook("proj", "on-run-start", 1, "select 4"),
        _hook("alpha_pkg", "on-run-start", 0, "select 5"),
        _hook("proj", "on-run-start", 0, "select 6"),
    )
    records = hook_records(manifest)
    assert [(r["hook_type"], r["package_name"], r["index"]) for r in records] == [
        ("on-run-start", "proj", 0),
        ("on-run-start", "proj", 1),
        ("on-run-start", "alpha_pkg", 0),
        ("on-run-start", "alpha_pkg", 1),
        ("on-run-start", "zeta_pkg", 0),
        ("on-run-end", "proj", 0),
    ]
    assert records[0] == {
        "unique_id": "operation.proj.proj-on-run-start-0",
        "hook_type": "on-run-start",
        "package_name": "proj",
        "index": 0,
        "reads_results": False,
    }


def test_reads_results_directly_or_through_macros_transitively() -> None:
    macros = {
        "macro.pkg.upload": _macro("{% macro upload() %}{{ pkg.rows() }}{% endmacro %}", "macro.pkg.rows"),
        "macro.pkg.rows": _macro("{% for r in results %}{{ r.node.unique_id }}{% endfor %}"),
        "macro.pkg.grant": _macro("{% for s in schemas %}grant usage on schema {{ s }}{% endfor %}"),
        "macro.pkg.log": _macro("insert into log select '{{ invocation_id }}', 'run_results' -- all results"),
        # Its own `results` (set, loop, parameter): not the invocation's.
        "macro.pkg.local": _macro(
            "{% macro local(schemas) %}{% set results = run_query('select 1') %}"
            "{% for r in results %}{{ r }}{% endfor %}{{ schemas }}{% endmacro %}"
        ),
    }
    manifest = _manifest(
        _hook("pkg", "on-run-end", 0, "{{ pkg.upload() }}", ("macro.pkg.upload",)),
        _hook("pkg", "on-run-end", 1, "{{ pkg.grant() }}", ("macro.pkg.grant",)),
        _hook("pkg", "on-run-end", 2, "{{ pkg.log() }}{{ pkg.local(['a']) }}", ("macro.pkg.log", "macro.pkg.local")),
        _hook("pkg", "on-run-end", 3, "{{ log(results | length) }}"),
        _hook("pkg", "on-run-end", 4, "{{ pkg.gone() }}", ("macro.pkg.gone",)),
        _hook("pkg", "on-run-start", 0, "{{ log(selected_resources) }}"),
        macros=macros,
    )
    reads = {f"{r['hook_type'][7:]}{r['index']}": r["reads_results"] for r in hook_records(manifest)}
    # `run_results` and SQL text are not the context member; a macro the manifest lacks counts as reading it.
    assert reads == {"end0": True, "end1": True, "end2": False, "end3": True, "end4": True, "start0": True}


def test_a_manifest_without_hooks_or_nodes() -> None:
    assert hook_records(_manifest()) == []
    with pytest.raises(ManifestError, match="dbt parse"):
        hook_records({"metadata": {}})


def _records(start_reads: bool = False, end_reads: bool = True) -> list[dict[str, Any]]:
    return [
        {"unique_id": "s0", "hook_type": "on-run-start", "package_name": "p", "index": 0, "reads_results": False},
        {"unique_id": "s1", "hook_type": "on-run-start", "package_name": "p", "index": 1, "reads_results": start_reads},
        {"unique_id": "e0", "hook_type": "on-run-end", "package_name": "p", "index": 0, "reads_results": end_reads},
    ]


def test_auto_hoists_a_type_only_when_no_hook_of_it_reads_results() -> None:
    plan = hoist_plan(_records(), "auto")
    assert plan.once == ("on-run-start",) and plan.per_task == ("on-run-end",)
    assert plan.start_task and not plan.end_task
    assert plan.model_task_hooks == ("on-run-end",)
    assert "e0 reads" in plan.reasons[1] and "run_hooks='once'" in plan.reasons[1]
    everything = hoist_plan(_records(end_reads=False), "auto")
    assert everything.once == ("on-run-start", "on-run-end") and everything.model_task_hooks is False
    nothing = hoist_plan(_records(start_reads=True), "auto")
    assert nothing.once == () and nothing.model_task_hooks is True and len(nothing.reasons) == 2


def test_once_and_per_task_override_the_analysis() -> None:
    once = hoist_plan(_records(start_reads=True), "once")
    assert once.once == ("on-run-start", "on-run-end") and once.model_task_hooks is False
    assert "they see no model results: s1" in once.reasons[0]
    per_task = hoist_plan(_records(end_reads=False), "per_task")
    assert per_task.once == () and per_task.per_task == ("on-run-start", "on-run-end")
    assert per_task.model_task_hooks is True


def test_a_project_without_hooks_needs_no_hook_task() -> None:
    plan = hoist_plan([], "once")
    assert plan.once == () and plan.reasons == () and plan.model_task_hooks is True
    assert not plan.start_task and not plan.end_task


def test_bad_mode_and_run_hooks_values_say_what_is_allowed() -> None:
    with pytest.raises(ConfigurationError, match="once, per_task, auto"):
        hoist_plan(_records(), "always")
    assert hook_types_arg(True) is True and hook_types_arg(False) is False
    assert hook_types_arg("on-run-end") == ("on-run-end",)
    assert hook_types_arg(["on-run-end", "on-run-start"]) is True
    assert hook_types_arg([]) is False
    with pytest.raises(ConfigurationError, match="on-run-start, on-run-end"):
        hook_types_arg("on-run-middle")
