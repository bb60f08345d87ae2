"""``path:`` selection without the project on disk: dbt's glob, matched against the paths the nodes record.

dbt globs the pattern in the root project's directory and selects a node whose file, whose schema file (the
``patch_path`` a model's YAML description came from), or one of whose folders is among the results. Every such
path is a node's own, so matching the glob against each node's file and folders gives the same answer without a
file system. ``**`` stands for any number of folders (never a file, as in ``pathlib``), ``*``/``?``/``[..]`` match
within one path segment, case-sensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from airflow_provider_idbt.errors import SelectionError


def _pattern(value: str) -> tuple[str, ...]:
    """The pattern's segments; ``()`` for the project root itself (``.``)."""
    if not value.strip():
        raise SelectionError("selection `path:` needs a path relative to the project, as in path:models/staging")
    if value.startswith("/"):
        raise SelectionError(
            f"selection path:{value!r} is absolute; dbt takes paths relative to the project, as in path:models/staging"
        )
    parts = tuple(part for part in value.split("/") if part not in ("", "."))
    if ".." in parts:
        raise SelectionError(f"selection path:{value!r} leaves the project (`..`); give a path inside the project")
    for part in parts:
        if "**" in part and part != "**":
            raise SelectionError(f"selection path:{value!r}: `**` can only be a whole path segment, as in models/**")
    return parts


def _segments_match(pattern: tuple[str, ...], segments: list[str], is_dir: bool) -> bool:
    if "**" not in pattern:  # the common case: one pattern segment per path segment
        return len(pattern) == len(segments) and all(map(fnmatchcase, segments, pattern))
    memo: dict[tuple[int, int], bool] = {}

    def match(p: int, s: int) -> bool:
        key = (p, s)
        if key not in memo:
            memo[key] = _step(p, s)
        return memo[key]

    def _step(p: int, s: int) -> bool:
        if p == len(pattern):
            return s == len(segments)
        part = pattern[p]
        if part == "**":
            if p == len(pattern) - 1:
                return is_dir  # a trailing ** yields folders only (their nodes match through them)
            return any(match(p + 1, at) for at in range(s, len(segments) + 1))
        return s < len(segments) and fnmatchcase(segments[s], part) and match(p + 1, s + 1)

    return match(0, 0)


def _candidates(node: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(path, is a folder) for the node's file, its schema file and each folder above them."""
    found: list[tuple[str, bool]] = []
    files = [str(node.get("original_file_path") or "")]
    patch = node.get("patch_path")
    if patch:
        files.append(str(patch).split("://", 1)[-1])
    for file in files:
        if not file:
            continue
        found.append((file, False))
        folders = file.split("/")[:-1]
        found.extend(("/".join(folders[: depth + 1]), True) for depth in range(len(folders)))
    return found


def by_path(nodes: Mapping[str, Mapping[str, Any]], value: str, project_name: str | None) -> set[str]:
    """Nodes under ``value`` (a file, a folder or a glob). With ``project_name``, a package's node only matches
    through a path that also exists in the root project, because that is where dbt looks."""
    pattern = _pattern(value)
    if all(part == "**" for part in pattern):  # `.` and `**` take the project folder itself: every node
        return set(nodes)
    candidates = {uid: _candidates(node) for uid, node in nodes.items()}
    root_paths: set[str] | None = None
    if project_name:
        root_paths = {
            path
            for uid, node in nodes.items()
            if node.get("package_name") == project_name
            for path, _ in candidates[uid]
        }
    seen: dict[tuple[str, bool], bool] = {}
    found = set()
    for uid, node in nodes.items():
        foreign = root_paths is not None and node.get("package_name") != project_name
        for candidate in candidates[uid]:
            if foreign and candidate[0] not in root_paths:  # type: ignore[operator]
                continue
            hit = seen.get(candidate)
            if hit is None:
                hit = seen[candidate] = _segments_match(pattern, candidate[0].split("/"), candidate[1])
            if hit:
                found.add(uid)
                break
    return found
