"""The slim index: what DAG parsing and a task need from ``manifest.json``, as small plain JSON beside it.

A real manifest is mostly SQL, compiled SQL, columns, docs and macros, none of which a DAG build reads; the DAG
processor re-parses every DAG file all day, and ``json.load`` of a 15 MB manifest was most of a build. The slim
index keeps one small record per node (see :func:`node_record`), the parsed ``selectors.yml`` and the project's
hooks, keyed by the manifest's sha256. It is plain JSON (never pickle: a DAG processor must not execute data it
reads), written by ``idbt prepare`` or on the first load of a manifest whose folder is writable.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.run_hooks import hook_records
from airflow_provider_idbt.errors import ManifestError

SLIM_INDEX_FILE = "idbt_index.json"
# Bumped whenever a record gains or changes a field, so an index written by an older provider is rebuilt.
FORMAT = 3
INDEXED_TYPES = frozenset({"model", "seed", "snapshot", "test", "analysis"})
FIX = (
    "run `dbt parse` in the project (same dbt version and adapter as the tasks) and deploy the new target/manifest.json"
)
_HASH_CHUNK = 1 << 20


def manifest_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _relation(database: Any, schema: Any, identifier: Any) -> str | None:
    if not identifier:
        return None
    return ".".join(str(part) for part in (database, schema, identifier) if part)


def node_record(node: Mapping[str, Any], *, source: bool = False) -> dict[str, Any]:
    """One node (or, with ``source``, one source) of the manifest, reduced to what selection and tasks read."""
    config = dict(node.get("config") or {})
    identifier = node.get("identifier") if source else node.get("alias")
    ephemeral = config.get("materialized") == "ephemeral"
    checksum = node.get("checksum") or {}
    record: dict[str, Any] = {
        "unique_id": node["unique_id"],
        "resource_type": "source" if source else node.get("resource_type"),
        "name": node.get("name"),
        "package_name": node.get("package_name"),
        "path": node.get("path") or "",
        "original_file_path": node.get("original_file_path") or "",
        # The YAML file that describes the node, which dbt's `path:` method matches too.
        "patch_path": node.get("patch_path"),
        "fqn": list(node.get("fqn") or ()),
        "tags": list(node.get("tags") or ()),
        "config": config,
        "meta": dict(node.get("meta") or config.get("meta") or {}),
        "depends_on": list((node.get("depends_on") or {}).get("nodes") or ()),
        "version": None if node.get("version") is None else str(node.get("version")),
        "latest_version": None if node.get("latest_version") is None else str(node.get("latest_version")),
        "access": node.get("access"),
        "group": node.get("group") or config.get("group"),
        "database": node.get("database"),
        "schema": node.get("schema"),
        "identifier": identifier,
        "relation": None if ephemeral else _relation(node.get("database"), node.get("schema"), identifier),
        "description": node.get("description") or "",
        "checksum": [str(checksum.get("name") or "none"), str(checksum.get("checksum") or "")],
    }
    if record["resource_type"] == "test":
        metadata = node.get("test_metadata") or {}
        record["test_name"] = metadata.get("name")
        record["test_namespace"] = metadata.get("namespace")
        record["attached_node"] = node.get("attached_node")
        record["column_name"] = node.get("column_name")
    if source:
        record["source_name"] = node.get("source_name")
    return record


def build_slim_index(data: Mapping[str, Any], *, sha256: str = "") -> dict[str, Any]:
    """The slim index of a parsed manifest (``data``), recording the manifest file's ``sha256``."""
    metadata = data.get("metadata") or {}
    nodes: dict[str, Any] = {}
    for uid, node in (data.get("nodes") or {}).items():
        if node.get("resource_type") in INDEXED_TYPES and (node.get("config") or {}).get("enabled", True):
            nodes[uid] = node_record(node)
    for uid, source in (data.get("sources") or {}).items():
        if (source.get("config") or {}).get("enabled", True):
            nodes[uid] = node_record(source, source=True)
    disabled = [
        {key: node.get(key) for key in ("unique_id", "resource_type", "name", "package_name")}
        for versions in (data.get("disabled") or {}).values()
        for node in versions
    ]
    return {
        "format": FORMAT,
        "manifest_sha256": sha256,
        "metadata": {key: str(metadata.get(key) or "") for key in ("dbt_version", "adapter_type", "project_name")},
        "nodes": nodes,
        "disabled": disabled,
        "selectors": dict(data.get("selectors") or {}),
        # on-run-start / on-run-end hooks, packages' included, in dbt's order (see run_hooks.hook_records).
        "hooks": hook_records(data),
    }


def read_manifest(file: Path) -> dict[str, Any]:
    """The full manifest, checked to be one; a clear error for anything else."""
    try:
        with file.open("rb") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ManifestError(f"dbt manifest {str(file)!r} is unreadable ({exc.strerror or exc}); {FIX}") from exc
    except ValueError as exc:
        raise ManifestError(
            f"dbt manifest {str(file)!r} cannot be read as JSON ({exc}); a truncated copy? {FIX}"
        ) from exc
    schema = (data.get("metadata") or {}).get("dbt_schema_version", "") if isinstance(data, dict) else ""
    if "/manifest/" not in str(schema) or not isinstance(data.get("nodes"), dict):
        raise ManifestError(f"{str(file)!r} is not a dbt manifest (no manifest dbt_schema_version); {FIX}")
    return data


def write_slim_index(manifest: Path) -> Path:
    """Build the slim index of ``manifest`` and write it beside it (atomically); return its path."""
    manifest = Path(manifest)
    stat = manifest.stat()
    index = build_slim_index(read_manifest(manifest), sha256=manifest_sha256(manifest))
    index["manifest_stat"] = [stat.st_size, stat.st_mtime_ns]
    return _write(manifest.with_name(SLIM_INDEX_FILE), index)


def _write(path: Path, index: Mapping[str, Any]) -> Path:
    # A temp file renamed into place: a DAG parse running at the same time reads the old index or the new one.
    fd, tmp = tempfile.mkstemp(prefix=".idbt_index.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(index, handle, separators=(",", ":"), default=str)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_slim_index(manifest: Path) -> dict[str, Any]:
    """The slim index of ``manifest``: read from beside it when it still matches, else built (and written).

    An index matches when it was written for a manifest of the same sha256. The manifest is only hashed when
    its size or modification time differ from what the index recorded, so an unchanged deployment costs one
    ``stat`` and one small ``json.load``.
    """
    manifest = Path(manifest)
    try:
        stat = manifest.stat()
    except OSError as exc:
        raise ManifestError(f"dbt manifest {str(manifest)!r} is unreadable ({exc.strerror}); {FIX}") from exc
    slim = manifest.with_name(SLIM_INDEX_FILE)
    index = _read_index(slim)
    if index is not None:
        seen = index.get("manifest_stat") or []
        if seen == [stat.st_size, stat.st_mtime_ns]:
            return index
        sha = manifest_sha256(manifest)
        if index.get("manifest_sha256") == sha:
            return index
    else:
        sha = manifest_sha256(manifest)
    built = build_slim_index(read_manifest(manifest), sha256=sha)
    built["manifest_stat"] = [stat.st_size, stat.st_mtime_ns]
    try:
        _write(slim, built)
    except OSError:
        pass  # a read-only deployment (an image, a mounted bucket) still works, it just reads the full file
    return built


def _read_index(slim: Path) -> dict[str, Any] | None:
    try:
        with slim.open("rb") as handle:
            index = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("nodes"), dict):
        return None
    return index
