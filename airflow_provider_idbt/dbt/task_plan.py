"""Which tasks a selection of dbt nodes becomes, and how they are wired: the task group's plan, without Airflow.

Models, seeds and snapshots become one task each (ephemeral models are folded into their children: they build
nothing, their SQL is a CTE of each child). Tests are placed as the DAG author asks: one test task after each
node (``after_each``), inside the node's ``dbt build`` (``build``), after every node (``after_all``), or not at
all (``none``). Sources never run but stay in the lineage (as the inputs of the nodes that read them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_idbt.dbt.graph import task_edges, topological_order
from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.dbt.node_settings import node_settings
from airflow_provider_idbt.errors import ConfigurationError

TEST_MODES = ("after_each", "build", "after_all", "none")
TASK_TYPES = ("model", "seed", "snapshot")
NODE_COMMANDS = {"model": "run", "seed": "seed", "snapshot": "snapshot"}
_TASK_ID_BAD = re.compile(r"[^A-Za-z0-9_\-]")
_MAX_TASK_ID = 200


@dataclass(frozen=True)
class PlannedTask:
    """One task of the group: the node it runs, its command, its upstream tasks and its settings."""

    task_id: str
    label: str
    command: str
    node: str
    upstream: tuple[str, ...] = ()
    # For a test task: exactly the tests it runs (dbt's unique ids).
    tests: tuple[str, ...] = ()
    folder: tuple[str, ...] = ()
    doc: str = ""
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)


def plan_tasks(
    index: ManifestIndex,
    selected: Collection[str],
    *,
    tests: str = "after_each",
    resource_types: Iterable[str] = TASK_TYPES,
    folder_groups: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[PlannedTask]:
    """The tasks for ``selected`` unique ids, parents before children."""
    if tests not in TEST_MODES:
        raise ConfigurationError(f"tests={tests!r} is not a test placement; use one of {', '.join(TEST_MODES)}")
    wanted_types = tuple(resource_types)
    unknown = sorted(set(wanted_types) - set(TASK_TYPES))
    if unknown:
        raise ConfigurationError(
            f"resource_types {', '.join(unknown)} cannot be tasks; use {', '.join(TASK_TYPES)} (tests: tests=)"
        )
    nodes = index.nodes
    order = topological_order(nodes, nodes.keys())  # also refuses a cycle anywhere in the project
    chosen = set(selected)
    runs = [uid for uid in order if uid in chosen and _runs(nodes[uid], wanted_types)]
    run_set = set(runs)
    by_ref = _override_keys(index, overrides or {})
    ids = _task_ids(index, runs)
    edges = task_edges(nodes, run_set.__contains__, runs)
    selected_tests = [uid for uid in order if uid in chosen and nodes[uid]["resource_type"] == "test"]
    homes, loose = _place_tests(index, selected_tests, run_set)
    if tests == "none":
        homes, loose = {}, []
    planned: dict[str, PlannedTask] = {}
    for uid in runs:
        node, spec = nodes[uid], index.spec(uid)
        build = tests == "build" and uid in homes
        planned[uid] = PlannedTask(
            task_id=ids[uid],
            label=_label(node),
            command="build" if build else NODE_COMMANDS[node["resource_type"]],
            node=uid,
            upstream=tuple(ids[parent] for parent in edges[uid]),
            folder=_folder(index, node) if folder_groups else (),
            doc=node["description"],
            outputs=(spec.output,) if spec.output else (),
            inputs=spec.inputs,
            settings=node_settings(uid, node["meta"], by_ref.get(uid)),
        )
    result = list(planned.values())
    # The node tasks nothing else waits for: every test task of `after_all` waits for all of them.
    node_leaves = _leaves(result)
    if tests in ("after_each", "after_all"):
        leaves = node_leaves if tests == "after_all" else ()
        taken = {task.task_id for task in result}
        for home, members in homes.items():
            owner = planned[home]
            task_id = _unique(f"{owner.task_id}__test", taken)
            result.append(
                PlannedTask(
                    task_id=task_id,
                    label=f"{owner.label} · test",
                    command="test",
                    node=home,
                    upstream=leaves or (owner.task_id,),
                    tests=tuple(members),
                    folder=owner.folder,
                    doc=_tests_doc(index, owner.label, members),
                    settings=owner.settings,
                )
            )
    if tests != "none":
        result.extend(_loose_tests(index, loose, planned, edges_for=run_set, leaves=node_leaves, tests=tests))
    return result


def _runs(node: Mapping[str, Any], wanted: tuple[str, ...]) -> bool:
    if node["resource_type"] not in wanted:
        return False
    return not (node["resource_type"] == "model" and node["config"].get("materialized") == "ephemeral")


def _relational_parents(index: ManifestIndex, uid: str) -> list[str]:
    """A test's parents, with ephemeral models replaced by what they read (dbt tests their children's SQL)."""
    nodes = index.nodes
    found: list[str] = []
    stack = list(nodes[uid]["depends_on"])
    seen: set[str] = set()
    while stack:
        parent = stack.pop()
        if parent in seen or parent not in nodes:
            continue
        seen.add(parent)
        node = nodes[parent]
        if node["resource_type"] == "model" and node["config"].get("materialized") == "ephemeral":
            stack.extend(node["depends_on"])
        else:
            found.append(parent)
    return sorted(found)


def _is_ancestor(nodes: Mapping[str, Mapping[str, Any]], ancestor: str, of: str) -> bool:
    stack, seen = list(nodes[of]["depends_on"]), set()
    while stack:
        uid = stack.pop()
        if uid == ancestor:
            return True
        if uid in seen or uid not in nodes:
            continue
        seen.add(uid)
        stack.extend(nodes[uid]["depends_on"])
    return False


def _place_tests(
    index: ManifestIndex, test_ids: list[str], run_set: set[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Tests grouped under the task node they check last (``homes``), and those with no such node (``loose``).

    A test's home is the one parent every other parent is upstream of, as dbt's "buildable" indirect selection
    decides: ``relationships`` from orders to customers belongs after orders. A test across two unrelated
    nodes, or on sources only, has no home: it becomes its own task after each of them.
    """
    homes: dict[str, list[str]] = {}
    loose: list[str] = []
    for test in test_ids:
        parents = _relational_parents(index, test)
        tasked = [p for p in parents if p in run_set]
        home = next(
            (
                candidate
                for candidate in tasked
                if all(other == candidate or _is_ancestor(index.nodes, other, candidate) for other in parents)
            ),
            None,
        )
        if home is None:
            loose.append(test)
        else:
            homes.setdefault(home, []).append(test)
    return homes, loose


def _loose_tests(
    index: ManifestIndex,
    loose: list[str],
    planned: Mapping[str, PlannedTask],
    *,
    edges_for: set[str],
    leaves: tuple[str, ...],
    tests: str,
) -> list[PlannedTask]:
    nodes = index.nodes
    if not loose:
        return []
    edges = task_edges(nodes, edges_for.__contains__, loose)
    taken = {task.task_id for task in planned.values()}
    result = []
    for test in loose:
        node = nodes[test]
        upstream = leaves if tests == "after_all" else tuple(planned[uid].task_id for uid in edges[test])
        owner = next((planned[uid] for uid in edges[test]), None)
        result.append(
            PlannedTask(
                task_id=_unique(f"test__{_safe(node['name'])}", taken),
                label=f"{node['name']} · test",
                command="test",
                node=test,
                upstream=upstream,
                tests=(test,),
                folder=owner.folder if owner else (),
                doc=_tests_doc(index, node["name"], [test]),
                settings=owner.settings if owner else node_settings(test, node["meta"]),
            )
        )
    return result


def _leaves(tasks: list[PlannedTask]) -> tuple[str, ...]:
    upstream = {parent for task in tasks for parent in task.upstream}
    return tuple(task.task_id for task in tasks if task.task_id not in upstream and task.command != "test")


def _label(node: Mapping[str, Any]) -> str:
    version = node.get("version")
    return f"{node['name']} (v{version})" if version is not None else str(node["name"])


def _safe(text: str) -> str:
    safe = _TASK_ID_BAD.sub("_", text)
    if len(safe) > _MAX_TASK_ID:
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]
        safe = f"{safe[: _MAX_TASK_ID - 9]}_{digest}"
    return safe


def _unique(task_id: str, taken: set[str]) -> str:
    candidate, n = task_id, 2
    while candidate in taken:
        candidate, n = f"{task_id}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _task_ids(index: ManifestIndex, runs: list[str]) -> dict[str, str]:
    """Stable ids: the node's name (``_v2`` for a version); a package's nodes as ``package__name``.

    An id depends only on its own node, never on which other nodes exist, so adding a model renames no task
    (Airflow keeps a task's history by its id). Two nodes that still collide get a digest of their unique id.
    """
    ids: dict[str, str] = {}
    for uid in runs:
        node = index.nodes[uid]
        base = str(node["name"])
        if node.get("version") is not None:
            base = f"{base}_v{node['version']}"
        if node["package_name"] != index.project_name:
            base = f"{node['package_name']}__{base}"
        ids[uid] = _safe(base)
    seen: dict[str, list[str]] = {}
    for uid, task_id in ids.items():
        seen.setdefault(task_id, []).append(uid)
    for task_id, uids in seen.items():
        if len(uids) > 1:
            for uid in uids:
                ids[uid] = f"{task_id}__{hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()[:8]}"
    return ids


def _folder(index: ManifestIndex, node: Mapping[str, Any]) -> tuple[str, ...]:
    parts = tuple(_safe(part) for part in str(node["path"]).replace("\\", "/").split("/")[:-1] if part)
    if node["package_name"] != index.project_name:
        parts = (_safe(str(node["package_name"])), *parts)
    return parts


def _tests_doc(index: ManifestIndex, label: str, members: list[str]) -> str:
    lines = [f"dbt tests of `{label}`:", ""]
    lines += [f"- `{index.nodes[uid]['name']}`" for uid in members]
    return "\n".join(lines)


def _override_keys(index: ManifestIndex, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """``node_settings`` keyed by name, ``package.name`` or unique id, resolved to unique ids; unknown keys fail."""
    resolved: dict[str, Mapping[str, Any]] = {}
    for ref, settings in overrides.items():
        if not isinstance(settings, Mapping):
            raise ConfigurationError(f"node_settings[{ref!r}] must be a mapping of settings, got {settings!r}")
        matches = [
            uid
            for uid, node in index.nodes.items()
            if ref in (uid, node["name"], f"{node['package_name']}.{node['name']}")
            and node["resource_type"] in TASK_TYPES
        ]
        if not matches:
            raise ConfigurationError(
                f"node_settings names {ref!r}, which is no model, seed or snapshot of {index.path}; "
                "use a node's name, package.name or unique id"
            )
        for uid in matches:
            resolved[uid] = settings
    return resolved
