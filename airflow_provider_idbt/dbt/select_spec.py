"""The grammar of dbt's node selection, parsed into a small tree: criteria combined by union, intersection, difference.

``--select "a b,c"`` is the union of ``a`` and the intersection of ``b`` and ``c``; each criterion is
``[@][N+][method[.arg...]:]value[+N]``. :mod:`~airflow_provider_idbt.dbt.selection` resolves the tree against the
node records; :mod:`~airflow_provider_idbt.dbt.selectors_yaml` builds the same tree from ``selectors.yml``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_idbt.errors import SelectionError

INDIRECT_MODES = ("eager", "cautious", "buildable", "empty")
# What we resolve from the node records, and what needs artifacts or resource types the index does not keep.
METHODS = frozenset(
    {
        "fqn",
        "tag",
        "group",
        "access",
        "source",
        "path",
        "file",
        "package",
        "config",
        "test_name",
        "test_type",
        "resource_type",
        "version",
    }
)
UNSUPPORTED = {
    "state": "needs a comparison manifest (--state)",
    "result": "needs a previous run's run_results.json",
    "source_status": "needs source freshness results (sources.json)",
    "exposure": "exposures are not in the node index",
    "metric": "metrics are not in the node index",
    "semantic_model": "semantic models are not in the node index",
    "saved_query": "saved queries are not in the node index",
    "unit_test": "unit tests are not in the node index",
}
_CRITERION = re.compile(
    r"(?P<at>@)?"
    r"(?:(?P<up_depth>\d*)(?P<up>\+))?"
    r"(?:(?P<method>[\w.]+):)?"
    r"(?P<value>.*?)"
    r"(?:(?P<down>\+)(?P<down_depth>\d*))?"
)


@dataclass(frozen=True)
class Criterion:
    """One ``method:value`` with its graph operators, as dbt's ``SelectionCriteria``."""

    raw: str
    method: str
    arguments: tuple[str, ...]
    value: Any
    childrens_parents: bool = False
    parents: bool = False
    parents_depth: int | None = None
    children: bool = False
    children_depth: int | None = None
    indirect_selection: str = "eager"


@dataclass(frozen=True)
class Group:
    """A set operation over its parts; ``difference`` takes the first part minus the others."""

    kind: Literal["union", "intersection", "difference"]
    parts: tuple[Spec, ...]
    indirect_selection: str = "eager"
    raw: Any = field(default=None, compare=False)


Spec = Criterion | Group


def check_indirect(mode: Any, where: str) -> str:
    if mode not in INDIRECT_MODES:
        raise SelectionError(
            f"indirect_selection {mode!r} in {where} is not one of {', '.join(INDIRECT_MODES)}; "
            "use eager (dbt's default), cautious, buildable or empty"
        )
    return str(mode)


def default_method(value: str) -> str:
    """A bare word is a path when it holds a ``/``, a file when it ends in .sql/.py/.csv, else an fqn, as dbt."""
    if "/" in value:
        return "path"
    if value.lower().endswith((".sql", ".py", ".csv")):
        return "file"
    return "fqn"


def split_method(raw_method: str, expression: str) -> tuple[str, tuple[str, ...]]:
    """``config.meta.owner`` -> ``("config", ("meta", "owner"))``; refuse what we cannot resolve."""
    name, *arguments = raw_method.split(".")
    if name in UNSUPPORTED:
        raise SelectionError(
            f"selection {expression!r}: the `{name}:` method {UNSUPPORTED[name]}, so it cannot be resolved "
            "when the DAG is parsed; select those nodes with another method (tag:, path:, fqn:, ...)"
        )
    if name not in METHODS:
        raise SelectionError(
            f"selection {expression!r}: `{name}` is not a dbt selection method; "
            f"use one of {', '.join(sorted(METHODS))} (or a bare model name)"
        )
    if name == "config" and (not arguments or not all(arguments)):
        raise SelectionError(f"selection {expression!r}: `config` needs a key, as in config.materialized:view")
    return name, tuple(arguments)


def _depth(raw: Any, expression: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        depth = int(raw)
    except (TypeError, ValueError):
        raise SelectionError(f"selection {expression!r}: depth {raw!r} is not a whole number") from None
    if depth < 0:
        raise SelectionError(f"selection {expression!r}: depth {raw!r} must not be negative")
    return depth


def criterion_from_fields(raw: Any, fields: dict[str, Any], default_indirect: str) -> Criterion:
    """A criterion from dbt's dict form (``method``, ``value``, ``parents``, ``children_depth``, ...)."""
    if "value" not in fields or fields["value"] is None:
        raise SelectionError(f"selection {raw!r} has no value: give one, as in `tag:nightly` or value: nightly")
    value = fields["value"]
    raw_method = fields.get("method")
    arguments: tuple[str, ...]
    if raw_method is None:
        method, arguments = default_method(str(value)), ()
    else:
        method, arguments = split_method(str(raw_method), str(raw))
    indirect = fields.get("indirect_selection")
    criterion = Criterion(
        raw=str(raw),
        method=method,
        arguments=arguments,
        value=value,
        childrens_parents=bool(fields.get("childrens_parents")),
        parents=bool(fields.get("parents")),
        parents_depth=_depth(fields.get("parents_depth"), raw),
        children=bool(fields.get("children")),
        children_depth=_depth(fields.get("children_depth"), raw),
        indirect_selection=default_indirect if indirect is None else check_indirect(indirect, f"selector {raw!r}"),
    )
    if criterion.children and criterion.childrens_parents:
        raise SelectionError(
            f"selection {raw!r}: the `@` prefix and a `+` suffix cannot be combined (`@` already takes every "
            "child and its parents); drop one of them"
        )
    return criterion


def parse_criterion(raw: str, indirect_selection: str = "eager") -> Criterion:
    """One selection word, such as ``2+tag:nightly+1`` or ``@config.materialized:view``."""
    match = _CRITERION.fullmatch(raw)
    if match is None:
        raise SelectionError(f"selection {raw!r} is not a valid dbt selection criterion")
    fields: dict[str, Any] = {
        "method": match["method"],
        "value": match["value"],
        "childrens_parents": match["at"] is not None,
        "parents": match["up"] is not None,
        "parents_depth": match["up_depth"],
        "children": match["down"] is not None,
        "children_depth": match["down_depth"],
    }
    return criterion_from_fields(raw, fields, indirect_selection)


def words(expressions: str | Sequence[str] | None, argument: str) -> list[str]:
    """The space-separated words of one or several expressions; an empty list when nothing was given."""
    if expressions is None:
        return []
    items = [expressions] if isinstance(expressions, str) else list(expressions)
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise SelectionError(f"{argument}= takes strings, got {item!r}: write it as in dbt, e.g. 'tag:nightly'")
        found.extend(item.split())
    return found


def parse_union(words_: Sequence[str], indirect_selection: str) -> Group:
    """dbt's CLI form: the union of the words, each the intersection of its comma-separated criteria."""
    intersections: list[Spec] = []
    for word in words_:
        pieces = word.split(",")
        if not all(pieces):
            raise SelectionError(
                f"selection {word!r} has an empty side of a comma; an intersection is `a,b` with no spaces "
                "around the comma and something on both sides"
            )
        criteria = tuple(parse_criterion(piece, indirect_selection) for piece in pieces)
        intersections.append(Group("intersection", criteria, indirect_selection, raw=word))
    return Group("union", tuple(intersections), indirect_selection, raw=list(words_))
