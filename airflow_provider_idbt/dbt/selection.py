"""dbt node selection (``select``/``exclude``/``selector``) resolved from the node records, without importing dbt.

:func:`select_nodes` returns the unique ids ``dbt ls`` would list for the same arguments, restricted to what the
node index holds (models, seeds, snapshots, tests, analyses, sources). It mirrors dbt-core's selector: criteria
are matched by their method, grown by the graph operators (``+``, ``N+``, ``+N``, ``@``), then tests are added by
indirect selection (eager, cautious, buildable, empty); words are unions, commas intersections, and ``exclude``
is subtracted. See docs/selection.md for the grammar and what is not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_idbt.dbt import select_methods as methods
from airflow_provider_idbt.dbt.select_paths import by_path
from airflow_provider_idbt.dbt.select_spec import Criterion, Group, Spec, check_indirect, parse_union, words
from airflow_provider_idbt.dbt.selectors_yaml import default_selector, selector_spec
from airflow_provider_idbt.errors import SelectionError

Nodes = Mapping[str, Mapping[str, Any]]
# What dbt selects when nothing is given, less the resource types the index does not hold (exposure:*, ...).
DEFAULT_SELECTION = ("fqn:*", "source:*")


@dataclass(frozen=True)
class NodeGraph:
    """Parents and children of every node, from ``depends_on``; edges to ids outside the records are dropped."""

    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]
    sources: frozenset[str]

    @classmethod
    def build(cls, nodes: Nodes) -> NodeGraph:
        parents: dict[str, tuple[str, ...]] = {}
        children: dict[str, list[str]] = {uid: [] for uid in nodes}
        for uid, node in nodes.items():
            ups = tuple(dep for dep in node.get("depends_on") or () if dep in children)
            if len(ups) > 1:
                ups = tuple(dict.fromkeys(ups))
            parents[uid] = ups
            for up in ups:
                children[up].append(uid)
        sources = frozenset(uid for uid, node in nodes.items() if node.get("resource_type") == "source")
        return cls(parents, {uid: tuple(down) for uid, down in children.items()}, sources)

    def _walk(self, edges: Mapping[str, tuple[str, ...]], start: Iterable[str], depth: int | None) -> set[str]:
        # Layer by layer, as dbt: a start node counts only when another start node reaches it.
        found: set[str] = set()
        frontier = set(start)
        level = 0
        while frontier and (depth is None or level < depth):
            layer = {other for uid in frontier for other in edges.get(uid, ()) if other not in found}
            found |= layer
            frontier = layer
            level += 1
        return found

    def ancestors(self, start: Iterable[str], depth: int | None = None) -> set[str]:
        return self._walk(self.parents, start, depth)

    def descendants(self, start: Iterable[str], depth: int | None = None) -> set[str]:
        return self._walk(self.children, start, depth)

    def successors(self, start: Iterable[str]) -> set[str]:
        return {child for uid in start for child in self.children.get(uid, ())}


class _Resolver:
    def __init__(self, nodes: Nodes, graph: NodeGraph, project_name: str | None) -> None:
        self.nodes = nodes
        self.graph = graph
        self.project_name = project_name

    def match(self, criterion: Criterion) -> set[str]:
        method, value = criterion.method, criterion.value
        if method == "config":
            return methods.by_config(self.nodes, value, criterion.arguments)
        text = str(value)
        if method == "path":
            return by_path(self.nodes, text, self.project_name)
        if method == "package":
            return methods.by_package(self.nodes, text, self.project_name)
        simple = {
            "fqn": methods.by_fqn,
            "tag": methods.by_tag,
            "group": methods.by_group,
            "access": methods.by_access,
            "source": methods.by_source,
            "file": methods.by_file,
            "resource_type": methods.by_resource_type,
            "test_name": methods.by_test_name,
            "test_type": methods.by_test_type,
            "version": methods.by_version,
        }
        try:
            return simple[method](self.nodes, text)
        except SelectionError as exc:
            raise SelectionError(f"selection {criterion.raw!r}: {exc}") from None

    def criterion(self, criterion: Criterion) -> tuple[set[str], set[str]]:
        collected = self.match(criterion)
        selected = set(collected)
        if criterion.childrens_parents:
            down = self.graph.descendants(collected) | collected
            selected |= self.graph.ancestors(down) | down
        if criterion.parents:
            selected |= self.graph.ancestors(collected, criterion.parents_depth)
        if criterion.children:
            selected |= self.graph.descendants(collected, criterion.children_depth)
        if criterion.indirect_selection == "empty":
            return selected, set()
        return self.expand(selected, criterion.indirect_selection)

    def _deps(self, uid: str) -> set[str]:
        return set(self.nodes[uid].get("depends_on") or ())

    def expand(self, selected: set[str], mode: str) -> tuple[set[str], set[str]]:
        """Add the tests of the selected nodes: eagerly, or when all (buildable: all or upstream) parents are in."""
        direct, pending = set(selected), set()
        buildable: set[str] = set()
        if mode == "buildable":
            buildable = selected | self.graph.ancestors(selected) | self.graph.sources
        for uid in self.graph.successors(selected):
            if self.nodes[uid].get("resource_type") != "test":
                continue
            if mode == "eager":
                direct.add(uid)
                continue
            deps = self._deps(uid)
            if deps <= selected or (mode == "buildable" and deps <= buildable):
                direct.add(uid)
            else:
                pending.add(uid)
        return direct, pending

    def incorporate(self, direct: set[str], pending: set[str], mode: str) -> set[str]:
        """A group's tests left pending by cautious/buildable criteria join once all their parents are in."""
        if direct == pending or mode not in ("cautious", "buildable"):
            return direct
        selected = set(direct)
        enough = selected if mode == "cautious" else selected | self.graph.ancestors(selected)
        for uid in pending:
            if uid not in self.graph.sources and self._deps(uid) <= enough:
                selected.add(uid)
        return selected

    def resolve(self, spec: Spec) -> tuple[set[str], set[str]]:
        if isinstance(spec, Criterion):
            return self.criterion(spec)
        bundles = [self.resolve(part) for part in spec.parts]
        directs = [direct for direct, _ in bundles]
        withs = [direct | pending for direct, pending in bundles]
        initial, pending = _combine(spec, directs), _combine(spec, withs)
        return self.incorporate(initial, pending, spec.indirect_selection), pending


def _combine(group: Group, sets: Sequence[set[str]]) -> set[str]:
    if not sets:
        return set()
    if group.kind == "union":
        return set().union(*sets)
    if group.kind == "intersection":
        return set.intersection(*sets)
    return sets[0].difference(*sets[1:])


def selection_spec(
    *,
    select: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    selector: str | None = None,
    selectors: Mapping[str, Any] | None = None,
    indirect_selection: str = "eager",
) -> Spec:
    """The selection tree dbt builds for these arguments (``selector`` > ``select``/``exclude`` > default)."""
    mode = check_indirect(indirect_selection, "indirect_selection=")
    included, excluded = words(select, "select"), words(exclude, "exclude")
    if selector is not None:
        if included or excluded:
            raise SelectionError(
                f"selector={selector!r} cannot be combined with select=/exclude= (dbt would ignore them); "
                "put the whole selection in the selector, or drop selector="
            )
        return selector_spec(selector, selectors, mode)
    if not included and not excluded:
        default = default_selector(selectors)
        if default is not None:
            return selector_spec(default, selectors, mode)
    union = parse_union(included or DEFAULT_SELECTION, mode)
    return Group("difference", (union, parse_union(excluded, mode)))


def select_nodes(
    nodes: Nodes,
    *,
    select: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    selector: str | None = None,
    selectors: Mapping[str, Any] | None = None,
    indirect_selection: str = "eager",
    project_name: str | None = None,
    graph: NodeGraph | None = None,
) -> frozenset[str]:
    """The unique ids dbt selects from ``nodes`` (unique id -> node record) for these arguments.

    ``select``/``exclude`` take dbt's syntax (a string of space-separated words, or several strings: their
    union); ``selector`` names a YAML selector of ``selectors`` (the manifest's ``selectors``); with none of the
    three, the selector marked ``default: true`` applies, else every node. ``project_name`` (the manifest's
    root project) resolves ``package:this`` and lets ``path:`` tell root paths from a package's; ``graph`` is
    :meth:`NodeGraph.build` of the same ``nodes``, to share between calls. Selecting nothing is not an error.
    Raises :class:`~airflow_provider_idbt.errors.SelectionError` for a malformed or unsupported selection.
    """
    spec = selection_spec(
        select=select,
        exclude=exclude,
        selector=selector,
        selectors=selectors,
        indirect_selection=indirect_selection,
    )
    resolver = _Resolver(nodes, graph if graph is not None else NodeGraph.build(nodes), project_name)
    direct, _ = resolver.resolve(spec)
    return frozenset(direct)
