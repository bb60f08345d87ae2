"""The slim index beside a real manifest: written once, reused while the manifest is the same, never stale."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt import manifest as manifest_module
from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.dbt.slim_index import (
    SLIM_INDEX_FILE,
    load_slim_index,
    manifest_sha256,
    read_manifest,
    write_slim_index,
)
from airflow_provider_idbt.errors import ManifestError
from tests.fixtures.dbt_projects import DbtProject


@pytest.fixture
def manifest(example_project: DbtProject, tmp_path: Path) -> Path:
    target = tmp_path / "target"
    target.mkdir()
    shutil.copy(example_project.manifest_path, target / "manifest.json")
    manifest_module._cache.clear()
    return target / "manifest.json"


def test_first_load_writes_the_index_and_later_loads_read_only_it(manifest: Path) -> None:
    first = load_slim_index(manifest)
    slim = manifest.with_name(SLIM_INDEX_FILE)
    assert slim.is_file()
    assert first["manifest_sha256"] == manifest_sha256(manifest)
    assert slim.stat().st_size < manifest.stat().st_size / 3
    # Proof that the second load does not read the manifest: it is no longer JSON, yet the index is used.
    stat = manifest.stat()
    manifest.write_bytes(b"x" * stat.st_size)
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_slim_index(manifest)["nodes"] == first["nodes"]


def test_records_hold_what_selection_and_tasks_need(manifest: Path) -> None:
    nodes = load_slim_index(manifest)["nodes"]
    model = nodes["model.idbt_example.customer_orders"]
    assert model["resource_type"] == "model"
    assert model["fqn"] == ["idbt_example", "marts", "customer_orders"]
    assert model["config"]["materialized"] == "table"
    assert model["relation"] == "idbt_example.main.customer_orders"
    assert model["path"] == "marts/customer_orders.sql"
    tests = [n for n in nodes.values() if n["resource_type"] == "test"]
    assert tests and all("attached_node" in t and "test_name" in t for t in tests)
    assert "raw_code" not in model and "columns" not in model


def test_a_new_manifest_rebuilds_the_index(manifest: Path) -> None:
    load_slim_index(manifest)
    data = json.loads(manifest.read_text())
    data["nodes"]["model.idbt_example.customer_orders"]["description"] = "rebuilt"
    manifest.write_text(json.dumps(data))
    rebuilt = load_slim_index(manifest)
    assert rebuilt["nodes"]["model.idbt_example.customer_orders"]["description"] == "rebuilt"
    assert json.loads(manifest.with_name(SLIM_INDEX_FILE).read_text())["manifest_sha256"] == manifest_sha256(manifest)


def test_a_copied_manifest_with_a_new_mtime_keeps_its_index(manifest: Path) -> None:
    write_slim_index(manifest)
    before = manifest.with_name(SLIM_INDEX_FILE).read_bytes()
    os.utime(manifest, (1_700_000_000, 1_700_000_000))  # what a download or `cp` without -p does
    load_slim_index(manifest)
    assert manifest.with_name(SLIM_INDEX_FILE).read_bytes() == before  # matched by sha256, not rewritten


def test_an_unwritable_index_path_still_loads(manifest: Path) -> None:
    # A read-only deployment (an image layer, a mounted bucket): writing the index fails, loading does not.
    # (A directory in the index's place, because chmod does not stop root, who runs CI.)
    manifest.with_name(SLIM_INDEX_FILE).mkdir()
    assert load_slim_index(manifest)["nodes"]
    assert ManifestIndex.load(manifest).model("customer_orders").name == "customer_orders"


def test_a_truncated_manifest_is_a_clear_error(manifest: Path) -> None:
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(ManifestError, match=r"cannot be read as JSON.*truncated.*dbt parse"):
        read_manifest(manifest)
    with pytest.raises(ManifestError, match="truncated"):
        ManifestIndex.load(manifest)


def test_a_garbage_index_is_rebuilt(manifest: Path) -> None:
    manifest.with_name(SLIM_INDEX_FILE).write_text('{"format": 2, "nodes": "no"}')
    assert load_slim_index(manifest)["nodes"]
