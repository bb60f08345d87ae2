"""Every module under warehouses/ declares one WarehouseSpec that holds together; docs list every one of them."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest
import yaml

from airflow_provider_idbt import warehouses
from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.warehouses import all_warehouses, candidates, failure_rows_for, warehouse
from airflow_provider_idbt.warehouses.spec import ANY_ADAPTER, TOKEN_ENV_VAR, TOKEN_REFERENCE, WarehouseSpec

DOCS = Path(__file__).resolve().parents[3] / "docs" / "warehouses"
SPECS = sorted(all_warehouses().values(), key=lambda spec: spec.adapter)
WITH_SNIPPET = [spec for spec in SPECS if spec.profile_snippet]


def test_every_module_is_found_by_its_adapter_name() -> None:
    modules = {m.name for m in pkgutil.iter_modules(warehouses.__path__)} - {"spec", "login"}
    assert set(all_warehouses()) == modules
    assert {"duckdb", "postgres"} <= modules
    assert warehouse("oracle") is None and warehouse(None) is None
    assert candidates("oracle") == () and len(candidates(None)) == len(modules)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.adapter)
def test_spec_holds_together(spec: WarehouseSpec) -> None:
    assert {row.adapter for row in spec.failures} <= {spec.adapter}
    assert spec.labels.recorded_in and "IDBT_QUERY_COMMENT" in spec.labels.project_config
    if spec.role is not None:
        assert spec.profile is not None and spec.role.profile_field in spec.profile.accepted
    if spec.profile is not None:
        assert spec.profile_snippet, "a generated profile needs the snippet for users' own profiles too"
        assert spec.profile.token_field not in spec.profile.accepted


def test_an_adapters_rows_come_before_the_generic_ones() -> None:
    rows = failure_rows_for("postgres")
    assert rows[0].adapter == "postgres" and rows[-1].adapter == ANY_ADAPTER
    assert {row.adapter for row in failure_rows_for("oracle")} == {ANY_ADAPTER}


@pytest.mark.parametrize("spec", WITH_SNIPPET, ids=lambda spec: spec.adapter)
def test_snippet_is_one_target_reading_the_token_only_through_env_var(spec: WarehouseSpec) -> None:
    assert spec.profile_snippet is not None
    document = yaml.safe_load(spec.profile_snippet)
    ((_name, profile),) = document.items()
    output = profile["outputs"][profile["target"]]
    assert output["type"] == spec.adapter
    secret_values = [value for value in output.values() if isinstance(value, str) and TOKEN_ENV_VAR in value]
    if spec.profile is not None and spec.profile.token_field:
        assert output[spec.profile.token_field] == TOKEN_REFERENCE
    assert all(value == TOKEN_REFERENCE for value in secret_values)
    if spec.profile is not None:
        # The documented fields are the ones a generated profile accepts: the two ways stay one mapping.
        given = {k: v for k, v in output.items() if k not in {"type", spec.profile.token_field}}
        assert render_target(spec.adapter, given)["type"] == spec.adapter


@pytest.mark.parametrize("spec", WITH_SNIPPET, ids=lambda spec: spec.adapter)
def test_docs_page_shows_the_snippet_and_project_config(spec: WarehouseSpec) -> None:
    page = (DOCS / f"{spec.adapter}.md").read_text()
    assert spec.profile_snippet is not None and spec.profile_snippet.strip() in page
    assert spec.labels.project_config in page


def test_docs_index_has_a_row_per_module() -> None:
    index = (DOCS / "README.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", index, flags=re.M))
    assert rows == set(all_warehouses())


def _index_rows() -> dict[str, list[str]]:
    index = (DOCS / "README.md").read_text()
    rows = {}
    for line in index.splitlines():
        if found := re.match(r"^\| `([a-z_]+)` \|", line):
            rows[found.group(1)] = [cell.strip() for cell in line.strip("|").split("|")]
    return rows


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.adapter)
def test_docs_index_row_says_what_the_module_declares(spec: WarehouseSpec) -> None:
    _adapter, _title, extra, profile, _login, errors, _ns, _labels, _role, _ran = _index_rows()[spec.adapter]
    assert (extra == "—") == (spec.extra is None) and (spec.extra is None or f"`{spec.extra}`" in extra)
    assert profile.startswith("yes") == (spec.profile is not None)
    if spec.profile is not None and spec.profile.token_field:
        assert f"`{spec.profile.token_field}`" in profile
    assert errors == "—" if not spec.failures else errors.split()[0] == str(len(spec.failures))
