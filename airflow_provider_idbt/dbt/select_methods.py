"""dbt's selection methods (``tag:``, ``path:``, ``config.x:`` ...), matched against the node records.

Each method takes the records and one value and returns the unique ids it matches, before graph operators and
indirect test selection. Wildcards (``*``, ``?``, ``[...]``) match as dbt's ``fnmatch`` does on POSIX: case
sensitive, and ``*`` crosses dots. Semantics follow dbt-core's own selector methods, including their quirks
(noted where they surprise).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import translate
from pathlib import PurePosixPath
from typing import Any

from airflow_provider_idbt.errors import SelectionError

Nodes = Mapping[str, Mapping[str, Any]]
_WILDCARDS = frozenset("*?[]")
# dbt's NodeType values: a valid type the index does not hold (exposure, ...) selects nothing, an unknown one fails.
RESOURCE_TYPES = frozenset(
    {
        "model", "analysis", "test", "snapshot", "operation", "seed", "rpc", "sql_operation", "doc", "source",
        "macro", "exposure", "metric", "group", "saved_query", "semantic_model", "unit_test", "fixture", "function",
    }
)  # fmt: skip


def _wild(pattern: str) -> bool:
    return not _WILDCARDS.isdisjoint(pattern)


def matcher(pattern: str) -> Callable[[str], bool]:
    """``fnmatch`` for one pattern; plain equality when it holds no wildcard (the common, cheap case)."""
    if _wild(pattern):
        compiled = re.compile(translate(pattern)).match
        return lambda text: compiled(text) is not None
    return pattern.__eq__


def _is_source(node: Mapping[str, Any]) -> bool:
    return node.get("resource_type") == "source"


def _fqn_matcher(selector: str) -> Callable[[list[str], bool], bool]:
    """dbt's qualified-name match of one fqn: the leaf, a dotted prefix, or a wildcard over the rest.

    Dots inside fqn segments (versions such as ``v1.2``) split like the selector's own dots.
    """
    parts = selector.split(".")
    wild_at = next((index for index, part in enumerate(parts) if _wild(part)), None)
    prefix = parts if wild_at is None else parts[:wild_at]
    rest = None if wild_at is None else re.compile(translate(".".join(parts[wild_at:]))).match
    bare = None if wild_at is None or "." in selector else re.compile(translate(selector)).match
    versioned_name = "_".join(parts[-2:])

    def match(fqn: list[str], versioned: bool) -> bool:
        if not fqn:
            return False
        if versioned and len(fqn) >= 2:
            if fqn[-2] == selector or f"{fqn[-2]}_{fqn[-1]}" == versioned_name:
                return True
        elif fqn[-1] == selector:
            return True
        flat = ".".join(fqn).split(".")
        if len(flat) < len(parts) or flat[: len(prefix)] != prefix:
            return False
        if rest is None:
            return True  # every part matched: a prefix of the fqn selects everything under it
        if rest(".".join(flat[len(prefix) :])):
            return True
        if bare is not None:  # a bare wildcard also matches the model's own name at any depth
            return bare(fqn[-2] if versioned and len(fqn) >= 2 else fqn[-1]) is not None
        return False

    return match


def by_fqn(nodes: Nodes, value: str) -> set[str]:
    if value == "*":  # dbt's default selection: the wildcard matches every fqn
        return {uid for uid, node in nodes.items() if not _is_source(node)}
    match = _fqn_matcher(value)
    found = set()
    for uid, node in nodes.items():
        if _is_source(node):
            continue
        fqn = list(node.get("fqn") or ())
        versioned = node.get("resource_type") == "model" and node.get("version") is not None
        if match(fqn, versioned) or match(fqn[1:], versioned):
            found.add(uid)
    return found


def by_tag(nodes: Nodes, value: str) -> set[str]:
    match = matcher(value)
    return {uid for uid, node in nodes.items() if any(match(str(tag)) for tag in node.get("tags") or ())}


def by_group(nodes: Nodes, value: str) -> set[str]:
    match = matcher(value)
    found = set()
    for uid, node in nodes.items():
        group = (node.get("config") or {}).get("group") or node.get("group")
        if not _is_source(node) and group and match(str(group)):
            found.add(uid)
    return found


def by_access(nodes: Nodes, value: str) -> set[str]:
    return {uid for uid, node in nodes.items() if node.get("resource_type") == "model" and node.get("access") == value}


def by_source(nodes: Nodes, value: str) -> set[str]:
    parts = value.split(".")
    if len(parts) > 3:
        raise SelectionError(
            f"source selector {value!r} has too many dots: write source:<source_name>, "
            "source:<source_name>.<table_name> or source:<package>.<source_name>.<table_name>"
        )
    if len(parts) == 3:
        package, source, table = parts
    else:
        package, source, table = "*", parts[0], parts[1] if len(parts) == 2 else "*"
    match_package, match_source, match_table = matcher(package), matcher(source), matcher(table)
    return {
        uid
        for uid, node in nodes.items()
        if _is_source(node)
        and match_package(str(node.get("package_name")))
        and match_source(str(node.get("source_name")))
        and match_table(str(node.get("name")))
    }


def by_file(nodes: Nodes, value: str) -> set[str]:
    match = matcher(value)
    found = set()
    for uid, node in nodes.items():
        file = PurePosixPath(str(node.get("original_file_path") or ""))
        if match(file.name) or match(file.stem):
            found.add(uid)
    return found


def by_package(nodes: Nodes, value: str, project_name: str | None) -> set[str]:
    if value == "this":
        if not project_name:
            raise SelectionError(
                "selection `package:this` names the root project, but no project name was given: "
                "pass project_name= (the manifest's metadata.project_name) or name the package"
            )
        value = project_name
    match = matcher(value)
    return {uid for uid, node in nodes.items() if match(str(node.get("package_name")))}


_MISSING = object()


def _descend(config: Any, keys: Iterable[str]) -> Any:
    value = config
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _equal(selector: Any, value: Any, case_insensitive: bool) -> bool:
    if selector == value:
        return True
    if case_insensitive and isinstance(selector, str) and isinstance(value, str):
        return selector.upper() == value.upper()
    # dbt compares "true"/"false" (any case) with booleans, and nothing else across types: "1" is not 1.
    word = str(selector).upper()
    return (word == "TRUE" and value is True) or (word == "FALSE" and value is False)


def by_config(nodes: Nodes, value: Any, keys: tuple[str, ...]) -> set[str]:
    case_insensitive = keys == ("severity",)  # dbt compares test severity case-insensitively
    found = set()
    for uid, node in nodes.items():
        current = _descend(node.get("config") or {}, keys)
        if current is _MISSING:
            continue
        candidates = current if isinstance(current, list) else [current]
        if any(_equal(value, candidate, case_insensitive) for candidate in candidates):
            found.add(uid)
    return found


def by_resource_type(nodes: Nodes, value: str) -> set[str]:
    if value not in RESOURCE_TYPES:
        raise SelectionError(
            f"resource_type {value!r} is not a dbt resource type; use one of model, seed, snapshot, test, source, "
            "analysis"
        )
    return {uid for uid, node in nodes.items() if node.get("resource_type") == value}


def by_test_name(nodes: Nodes, value: str) -> set[str]:
    match = matcher(value)
    return {
        uid
        for uid, node in nodes.items()
        if node.get("resource_type") == "test" and node.get("test_name") is not None and match(str(node["test_name"]))
    }


def by_test_type(nodes: Nodes, value: str) -> set[str]:
    # dbt tests `value in ("data")`, a substring test on "data" (and likewise "singular", "unit"): "sing" works.
    if value in ("generic", "schema"):
        kinds = {"generic"}
    elif value in "data":
        kinds = {"generic", "singular"}
    elif value in "singular":
        kinds = {"singular"}
    elif value in "unit":
        kinds = set()  # unit tests are not in the node index
    else:
        raise SelectionError(f"test_type {value!r} is not one of generic, singular, unit or data")
    found = set()
    for uid, node in nodes.items():
        if node.get("resource_type") == "test":
            kind = "singular" if node.get("test_name") is None else "generic"
            if kind in kinds:
                found.add(uid)
    return found


def _version_key(version: str) -> float | str:
    try:
        return float(version)
    except ValueError:
        return version


def _older(left: Any, right: Any) -> bool:
    """dbt's version order: numeric when both parse as numbers, else as strings."""
    a, b = _version_key(str(left)), _version_key(str(right))
    if isinstance(a, float) and isinstance(b, float):
        return a < b
    return str(left) < str(right)


def by_version(nodes: Nodes, value: str) -> set[str]:
    if value not in ("latest", "prerelease", "old", "none"):
        raise SelectionError(f"version selector {value!r} is not one of latest, prerelease, old or none")
    found = set()
    for uid, node in nodes.items():
        if node.get("resource_type") != "model":
            continue
        version, latest = node.get("version"), node.get("latest_version")
        if value == "none":
            hit = version is None
        elif value == "latest":
            hit = version is not None and str(version) == str(latest)
        elif not version or not latest:
            hit = False
        else:
            hit = _older(latest, version) if value == "prerelease" else _older(version, latest)
        if hit:
            found.add(uid)
    return found
