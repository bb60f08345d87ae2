"""dbt's project hooks (on-run-start / on-run-end) from a manifest, and which may run once per DAG run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_idbt.errors import ConfigurationError, ManifestError

HookType = Literal["on-run-start", "on-run-end"]
HOOK_TYPES: tuple[HookType, ...] = ("on-run-start", "on-run-end")
RunHooksMode = Literal["once", "per_task", "auto"]
RUN_HOOKS_MODES: tuple[str, ...] = ("once", "per_task", "auto")

# What dbt puts into a hook's context for one invocation only (dbt/task/run.py after_run, and the
# `selected_resources` context member): a hook that reads any of them needs every model's own invocation.
RUN_CONTEXT_NAMES = ("results", "schemas", "database_schemas", "selected_resources")
_READS_RUN_CONTEXT = re.compile(r"(?<![\w.])(" + "|".join(RUN_CONTEXT_NAMES) + r")\b")
_HOOK_ID = re.compile(r"-(on-run-start|on-run-end)-(\d+)$")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)  # only Jinja reads names; SQL text and comments do not
_SET = re.compile(r"\{%-?\s*set\s+(\w+)")
_FOR = re.compile(r"\{%-?\s*for\s+([\w\s,]+?)\s+in\b")
_PARAMS = re.compile(r"\{%-?\s*macro\s+\w+\s*\(([^)]*)\)")


def hook_records(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The project's hooks, packages' included, in the order dbt runs them within each type.

    ``[{"unique_id", "hook_type", "package_name", "index", "reads_results"}]``: on-run-start hooks first, then
    on-run-end. dbt (1.11 ``RunTask.get_hooks_by_type``) sorts each type by package, the root project's hooks
    first, then every package's by package name, each in the order of its ``dbt_project.yml`` list (``index``,
    0-based, read from the node id as dbt names it). ``reads_results`` is True when the hook's Jinja, or a macro
    it calls (``depends_on.macros``, transitively), reads a per-invocation context member (``results``,
    ``schemas``, ``database_schemas``, ``selected_resources``) it does not define itself (``set``, ``for``, a
    parameter), or calls a macro the manifest does not hold. A conservative reading: a false "reads" only
    keeps a hook in every task, as dbt runs it.
    """
    nodes = manifest.get("nodes")
    if not isinstance(nodes, Mapping):
        raise ManifestError("manifest.json has no `nodes` object; rebuild it with `dbt parse`")
    macros = manifest.get("macros") or {}
    root = str((manifest.get("metadata") or {}).get("project_name") or "")
    found: list[tuple[int, bool, str, int, dict[str, Any]]] = []
    for unique_id, node in nodes.items():
        if not isinstance(node, Mapping) or node.get("resource_type") != "operation":
            continue
        hook_type = next((tag for tag in HOOK_TYPES if tag in (node.get("tags") or ())), None)
        if hook_type is None:
            continue
        package = str(node.get("package_name") or "")
        index = _list_index(str(unique_id), node)
        record = {
            "unique_id": str(unique_id),
            "hook_type": hook_type,
            "package_name": package,
            "index": index,
            "reads_results": _reads_run_context(node, macros),
        }
        found.append((HOOK_TYPES.index(hook_type), package != root, package, index, record))
    found.sort(key=lambda item: item[:4])
    return [item[4] for item in found]


def _list_index(unique_id: str, node: Mapping[str, Any]) -> int:
    named = _HOOK_ID.search(unique_id)
    if named:
        return int(named.group(2))
    return int(node.get("index") or 0)


def _reads_names(jinja_sql: str) -> bool:
    """Whether the template reads a per-invocation context member it does not define itself (set, for, param)."""
    local = set(_SET.findall(jinja_sql))
    for names in [*_FOR.findall(jinja_sql), *_PARAMS.findall(jinja_sql)]:
        local.update(part.split("=")[0].strip() for part in names.split(","))
    return any(
        match.group(1) not in local
        for block in _JINJA.findall(jinja_sql)
        for match in _READS_RUN_CONTEXT.finditer(block)
    )


def _reads_run_context(node: Mapping[str, Any], macros: Mapping[str, Any]) -> bool:
    if _reads_names(str(node.get("raw_code") or "")):
        return True
    seen: set[str] = set()
    pending = list((node.get("depends_on") or {}).get("macros") or ())
    while pending:
        macro_id = str(pending.pop())
        if macro_id in seen:
            continue
        seen.add(macro_id)
        macro = macros.get(macro_id)
        if not isinstance(macro, Mapping):
            return True  # a macro we cannot read: assume the worst
        if _reads_names(str(macro.get("macro_sql") or "")):
            return True
        pending.extend((macro.get("depends_on") or {}).get("macros") or ())
    return False


@dataclass(frozen=True)
class HookPlan:
    """Where a DAG run's project hooks run.

    ``once``: the hook types that run once, in their own first (on-run-start) or last (on-run-end) task;
    ``per_task``: the hook types every model task still runs; ``model_task_hooks`` is what to pass as a model
    task's ``run_hooks`` (True: all, False: none, or the tuple of types it still runs); ``reasons``: why, one
    line per decision, for the DAG author's log.
    """

    once: tuple[HookType, ...]
    per_task: tuple[HookType, ...]
    reasons: tuple[str, ...]

    @property
    def model_task_hooks(self) -> bool | tuple[HookType, ...]:
        if not self.once:
            return True
        return self.per_task or False

    @property
    def start_task(self) -> bool:
        return "on-run-start" in self.once

    @property
    def end_task(self) -> bool:
        return "on-run-end" in self.once


def hoist_plan(hooks: Sequence[Mapping[str, Any]], mode: str) -> HookPlan:
    """Decide, per hook type, whether its hooks run once per DAG run or in every model task.

    ``once`` hoists every type that has hooks; ``per_task`` keeps dbt's own behaviour; ``auto`` hoists a type
    only when none of its hooks reads the invocation's context (``reads_results``), since a hoisted on-run-end
    sees no model results, and keeps the others per task. A type without hooks needs no task.
    """
    if mode not in RUN_HOOKS_MODES:
        raise ConfigurationError(f"run_hooks must be one of {', '.join(RUN_HOOKS_MODES)}, got {mode!r}")
    once: list[HookType] = []
    per_task: list[HookType] = []
    reasons: list[str] = []
    for hook_type in HOOK_TYPES:
        of_type = [hook for hook in hooks if hook.get("hook_type") == hook_type]
        if not of_type:
            continue
        readers = [str(hook.get("unique_id")) for hook in of_type if hook.get("reads_results")]
        if mode == "per_task":
            per_task.append(hook_type)
            reasons.append(f"{hook_type}: run_hooks='per_task': {len(of_type)} hook(s) run in every model task")
        elif mode == "once" or not readers:
            once.append(hook_type)
            why = "run_hooks='once'" if mode == "once" else "no hook reads the invocation's results"
            if mode == "once" and readers:
                why += f" (they see no model results: {', '.join(readers)})"
            reasons.append(f"{hook_type}: {len(of_type)} hook(s) run once per DAG run, {why}")
        else:
            per_task.append(hook_type)
            reasons.append(
                f"{hook_type}: kept in every model task because {', '.join(readers)} reads the invocation's "
                f"{'/'.join(RUN_CONTEXT_NAMES)}; set run_hooks='once' to run them once with an empty context"
            )
    return HookPlan(tuple(once), tuple(per_task), tuple(reasons))


def hook_types_arg(value: bool | str | Iterable[str]) -> bool | tuple[HookType, ...]:
    """A task's ``run_hooks``: True (all), False (none) or the hook types it runs; a clear error otherwise."""
    if isinstance(value, bool):
        return value
    names = (value,) if isinstance(value, str) else tuple(value)
    bad = [name for name in names if name not in HOOK_TYPES]
    if bad:
        raise ConfigurationError(
            f"run_hooks must be True, False or hook types from {', '.join(HOOK_TYPES)}; got {', '.join(map(str, bad))}"
        )
    chosen = tuple(hook_type for hook_type in HOOK_TYPES if hook_type in names)
    return True if chosen == HOOK_TYPES else (chosen or False)
