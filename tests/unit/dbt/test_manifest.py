"""ManifestIndex against a real `dbt parse` of the example project, plus synthetic manifests for edge cases."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.dbt.manifest import ManifestIndex, ModelSpec, file_checksum
from airflow_provider_idbt.errors import ManifestError, ModelNotFound, StaleManifest
from tests.fixtures.dbt_projects import DbtProject

ORDER = "model.idbt_example.order_totals"
MART = "model.idbt_example.customer_orders"


@pytest.fixture
def index(example_project: DbtProject) -> ManifestIndex:
    return ManifestIndex.load(example_project.manifest_path)


def test_metadata_comes_from_the_manifest(index: ManifestIndex) -> None:
    assert index.project_name == "idbt_example"
    assert index.adapter_type == "duckdb"
    assert index.dbt_version.startswith("1.")


def test_model_by_name_package_name_and_unique_id(index: ManifestIndex) -> None:
    spec = index.model("customer_orders")
    assert index.model("idbt_example.customer_orders") is spec
    assert index.model(MART) is spec
    assert spec.unique_id == MART
    assert spec.resource_type == "model"
    assert spec.package_name == "idbt_example"
    assert spec.original_file_path == "models/marts/customer_orders.sql"
    assert spec.fqn == ("idbt_example", "marts", "customer_orders")
    assert spec.materialized == "table"
    assert spec.meta == {"idbt": {"required_groups": ["analytics"]}}


def test_lineage_names_relations(index: ManifestIndex) -> None:
    spec = index.model(ORDER)
    assert spec.depends_on == ("model.idbt_example.stg_orders", "model.idbt_example.stg_payments")
    assert spec.inputs == ("idbt_example.main.stg_orders", "idbt_example.main.stg_payments")
    assert spec.output == "idbt_example.main.order_totals"
    assert index.model("stg_orders").inputs == ("idbt_example.main.orders",)  # a seed


def test_checksum_is_dbts_sha256_of_the_file(index: ManifestIndex, example_project: DbtProject) -> None:
    for spec in index.models():
        assert spec.checksum.name == "sha256"
        assert spec.checksum.value == file_checksum(example_project.project_dir / spec.original_file_path)


def test_models_are_the_root_projects_in_dependency_order(index: ManifestIndex) -> None:
    names = [spec.name for spec in index.models()]
    assert sorted(names) == ["customer_orders", "order_totals", "stg_customers", "stg_orders", "stg_payments"]
    position = {spec.unique_id: i for i, spec in enumerate(index.models())}
    for spec in index.models():
        for parent in spec.depends_on:
            if parent in position:
                assert position[parent] < position[spec.unique_id]
    assert index.models("some_other_package") == []


def test_unknown_model_suggests_close_names(index: ManifestIndex) -> None:
    with pytest.raises(ModelNotFound) as caught:
        index.model("custmer_orders")
    message = str(caught.value)
    assert "'customer_orders'" in message
    assert "dbt parse" in message


def test_selector_is_fqn_scoped_to_package(index: ManifestIndex) -> None:
    spec = index.model(MART)
    assert spec.selector == "fqn:idbt_example.marts.customer_orders,package:idbt_example"
    assert spec.selector_exclude is None


def test_load_is_cached_until_the_file_changes(example_project_copy: DbtProject) -> None:
    first = ManifestIndex.load(example_project_copy.manifest_path)
    assert ManifestIndex.load(example_project_copy.manifest_path) is first
    assert ManifestIndex.load(example_project_copy.manifest_path.parent) is first  # a target dir works too
    data = json.loads(example_project_copy.manifest_path.read_text())
    example_project_copy.manifest_path.write_text(json.dumps(data, indent=1))
    os.utime(example_project_copy.manifest_path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert ManifestIndex.load(example_project_copy.manifest_path) is not first


@pytest.mark.parametrize(
    "content",
    [None, b"{not json", b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json"}}'],
    ids=["missing", "not-json", "not-a-manifest"],
)
def test_bad_manifest_files_say_to_run_dbt_parse(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ManifestError, match="dbt parse"):
        ManifestIndex.load(path)


def test_fresh_manifest_passes(index: ManifestIndex, example_project: DbtProject) -> None:
    spec = index.model(MART)
    index.check_fresh(example_project.project_dir, spec, adapter_type="duckdb", dbt_version=index.dbt_version)
    major, minor, *_ = index.dbt_version.split(".")
    index.check_fresh(example_project.project_dir, index.model(MART), dbt_version=f"{major}.{minor}.999")


def test_edited_model_file_is_stale(example_project_copy: DbtProject) -> None:
    index = ManifestIndex.load(example_project_copy.manifest_path)
    spec = index.model(MART)
    model_file = example_project_copy.project_dir / spec.original_file_path
    # Whitespace around the SQL does not count: dbt strips it before hashing.
    model_file.write_text("\n\n" + model_file.read_text() + "\n   \n")
    index.check_fresh(example_project_copy.project_dir, spec)
    model_file.write_text(model_file.read_text().replace("count(", "count(distinct "))
    with pytest.raises(StaleManifest, match=r"customer_orders\.sql changed.*dbt parse"):
        index.check_fresh(example_project_copy.project_dir, spec)
    model_file.unlink()
    with pytest.raises(StaleManifest, match="gone"):
        index.check_fresh(example_project_copy.project_dir, spec)


def test_other_project_adapter_or_dbt_version_is_stale(example_project_copy: DbtProject) -> None:
    index = ManifestIndex.load(example_project_copy.manifest_path)
    spec = index.model(MART)
    project = example_project_copy.project_dir
    with pytest.raises(StaleManifest, match=r"'duckdb' adapter.*'postgres'"):
        index.check_fresh(project, spec, adapter_type="postgres")
    with pytest.raises(StaleManifest, match=r"dbt 0\.99\.0"):
        index.check_fresh(project, spec, dbt_version="0.99.0")
    project_yml = project / "dbt_project.yml"
    project_yml.write_text(project_yml.read_text().replace("name: idbt_example", "name: renamed"))
    with pytest.raises(StaleManifest, match="'renamed'"):
        index.check_fresh(project, spec)


# -- synthetic manifests: shapes the example project does not have --------------------------------------


def _node(uid: str, fqn: list[str], **extra: Any) -> dict[str, Any]:
    kind, package, name = uid.split(".")[:3]
    node = {
        "unique_id": uid,
        "name": name,
        "package_name": package,
        "resource_type": kind,
        "original_file_path": f"models/{name}.sql",
        "checksum": {"name": "sha256", "checksum": "0" * 64},
        "database": "db",
        "schema": "analytics",
        "alias": name,
        "fqn": fqn,
        "config": {"materialized": "table", "enabled": True},
        "depends_on": {"nodes": []},
    }
    node.update(extra)
    return node


def _write(tmp_path: Path, nodes: list[dict[str, Any]], **extra: Any) -> ManifestIndex:
    data = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": "1.11.0",
            "adapter_type": "postgres",
            "project_name": "proj",
        },
        "nodes": {node["unique_id"]: node for node in nodes},
        "sources": extra.get("sources", {}),
        "disabled": extra.get("disabled", {}),
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return ManifestIndex.load(path)


def test_nested_fqn_gets_an_exclude(tmp_path: Path) -> None:
    index = _write(
        tmp_path,
        [_node("model.proj.orders", ["proj", "orders"]), _node("model.proj.inner", ["proj", "orders", "inner"])],
    )
    spec = index.model("orders")
    assert spec.selector == "fqn:proj.orders,package:proj"
    assert spec.selector_exclude == "fqn:proj.orders.*"
    assert index.model("inner").selector_exclude is None


def test_root_project_shadows_packages_and_versions_resolve_to_latest(tmp_path: Path) -> None:
    index = _write(
        tmp_path,
        [
            _node("model.proj.users", ["proj", "users"]),
            _node("model.lib.users", ["lib", "users"]),
            _node("model.lib.events", ["lib", "events"]),
            _node("model.other.events", ["other", "events"]),
            _node("model.proj.dim.v1", ["proj", "dim", "v1"], name="dim", version=1, latest_version=2),
            _node("model.proj.dim.v2", ["proj", "dim", "v2"], name="dim", version=2, latest_version=2),
        ],
    )
    assert index.model("users").unique_id == "model.proj.users"
    assert index.model("lib.users").unique_id == "model.lib.users"
    assert index.model("dim").unique_id == "model.proj.dim.v2"
    assert index.model("dim.v1").unique_id == "model.proj.dim.v1"
    with pytest.raises(ModelNotFound, match=r"ambiguous.*model\.lib\.events.*model\.other\.events"):
        index.model("events")
    assert [s.unique_id for s in index.models()] == ["model.proj.dim.v1", "model.proj.dim.v2", "model.proj.users"]
    assert len(index.models(all_packages=True)) == 6


def test_sources_and_ephemeral_parents_become_inputs(tmp_path: Path) -> None:
    source = {"unique_id": "source.proj.raw.events", "database": "lake", "schema": "raw", "identifier": "events_v2"}
    eph = _node("model.proj.eph", ["proj", "eph"], config={"materialized": "ephemeral"})
    eph["depends_on"] = {"nodes": ["source.proj.raw.events"]}
    child = _node("model.proj.child", ["proj", "child"], depends_on={"nodes": ["model.proj.eph"]})
    index = _write(tmp_path, [eph, child], sources={source["unique_id"]: source})
    assert index.model("child").inputs == ("lake.raw.events_v2",)
    assert index.model("eph").output is None


def test_disabled_model_is_named_as_disabled(tmp_path: Path) -> None:
    disabled = {"model.proj.old": [_node("model.proj.old", ["proj", "old"])]}
    index = _write(tmp_path, [_node("model.proj.users", ["proj", "users"])], disabled=disabled)
    with pytest.raises(ModelNotFound, match="disabled"):
        index.model("old")


def test_spec_is_hashable(index: ManifestIndex) -> None:
    specs: set[ModelSpec] = set(index.models())
    assert len(specs) == 5


def test_node_finds_seeds_for_seed_and_build_but_not_for_run(index: ManifestIndex) -> None:
    seed = index.node("orders", ("seed",))
    assert seed.unique_id == "seed.idbt_example.orders" and seed.resource_type == "seed"
    assert (
        seed.output
        and seed.output.endswith(".orders")
        and seed.selector == "fqn:idbt_example.orders,package:idbt_example"
    )
    assert index.node("seed.idbt_example.orders", ("model", "seed", "snapshot")) == seed
    assert index.node("stg_orders", ("model", "seed", "snapshot")).resource_type == "model"
    with pytest.raises(ModelNotFound, match=r"no seed 'ordrs'.*did you mean 'orders'"):
        index.node("ordrs", ("seed",))
    with pytest.raises(ModelNotFound, match="not in the dbt manifest"):
        index.node("orders", ("model",))
    with pytest.raises(ModelNotFound, match="no snapshot 'orders'"):
        index.node("orders", ("snapshot",))


def test_a_changed_seed_file_makes_the_manifest_stale(example_project_copy: DbtProject) -> None:
    index = ManifestIndex.load(example_project_copy.manifest_path)
    seed = index.node("payments", ("seed",))
    index.check_fresh(example_project_copy.project_dir, seed)
    csv = example_project_copy.project_dir / "seeds" / "payments.csv"
    csv.write_text(csv.read_text() + "9999,999,card,1\n")
    with pytest.raises(StaleManifest, match=r"payments\.csv changed"):
        index.check_fresh(example_project_copy.project_dir, seed)
