"""The node graph of a manifest: dependency order, cycles, and edges between the nodes that become tasks."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_idbt.errors import ManifestError


def topological_order(nodes: Mapping[str, Mapping[str, Any]], chosen: Collection[str]) -> list[str]:
    """``chosen`` unique ids, parents before children (ties by unique id), through ``depends_on`` edges.

    Iterative (a real project's chains are deeper than Python's recursion limit allows); a cycle among the
    chosen nodes is a :class:`ManifestError` naming it.
    """
    chosen_set = set(chosen)
    done: set[str] = set()
    ordered: list[str] = []
    for root in sorted(chosen_set):
        if root in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(_parents(nodes, root, chosen_set)))]
        on_path = {root}
        while stack:
            uid, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                stack.pop()
                on_path.discard(uid)
                done.add(uid)
                ordered.append(uid)
                continue
            if parent in done:
                continue
            if parent in on_path:
                cycle = [entry for entry, _ in stack]
                cycle = [*cycle[cycle.index(parent) :], parent]
                raise ManifestError(
                    f"the dbt manifest has a dependency cycle: {' -> '.join(reversed(cycle))}; "
                    "dbt itself refuses to run it: remove one of these ref()s and run `dbt parse` again"
                )
            on_path.add(parent)
            stack.append((parent, iter(_parents(nodes, parent, chosen_set))))
    return ordered


def _parents(nodes: Mapping[str, Mapping[str, Any]], uid: str, chosen: set[str]) -> list[str]:
    return sorted(p for p in nodes[uid]["depends_on"] if p in chosen)


def task_edges(
    nodes: Mapping[str, Mapping[str, Any]], is_task: Callable[[str], bool], tasks: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """For each task node, the task nodes it must wait for: its parents, looking through nodes that are not tasks.

    dbt orders a selection by the whole project's graph: with ``a -> b -> c`` and only a and c selected, c still
    runs after a. Ephemeral models, unselected models and sources are looked through the same way.
    """
    memo: dict[str, frozenset[str]] = {}

    def nearest(uid: str) -> frozenset[str]:
        # The task nodes reached upwards from `uid` without passing a task node (iterative, memoised).
        stack = [uid]
        while stack:
            top = stack[-1]
            if top in memo:
                stack.pop()
                continue
            pending = [p for p in _all_parents(nodes, top) if not is_task(p) and p not in memo]
            if pending:
                stack.extend(pending)
                continue
            found: set[str] = set()
            for parent in _all_parents(nodes, top):
                if is_task(parent):
                    found.add(parent)
                else:
                    found |= memo.get(parent, frozenset())
            memo[top] = frozenset(found)
            stack.pop()
        return memo[uid]

    return {uid: tuple(sorted(nearest(uid))) for uid in tasks}


def _all_parents(nodes: Mapping[str, Mapping[str, Any]], uid: str) -> list[str]:
    node = nodes.get(uid)
    return [p for p in node["depends_on"] if p in nodes] if node is not None else []
