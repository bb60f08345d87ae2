"""OpenLineage dataset naming: namespaces per adapter (openlineage-dbt's), profile rendering, model datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.lineage import (
    DatasetName,
    dataset_namespace,
    identity_facet_fields,
    model_lineage,
    profile_target,
)
from airflow_provider_idbt.dbt.manifest import ManifestIndex
from tests.fixtures.dbt_projects import DbtProject
from tests.unit.identity.test_token import SECRET, make_token


@pytest.mark.parametrize(
    ("target", "namespace"),
    [
        ({"type": "postgres", "host": "db.internal", "port": 5433}, "postgres://db.internal:5433"),
        ({"type": "postgres", "host": "db.internal"}, "postgres://db.internal:5432"),
        ({"type": "redshift", "host": "rs.internal", "port": "5439"}, "redshift://rs.internal:5439"),
        ({"type": "duckdb", "path": "/data/wh.duckdb"}, "duckdb:///data/wh.duckdb"),
        ({"type": "snowflake", "account": "XY12345.eu-west-1"}, "snowflake://xy12345.eu-west-1"),
        ({"type": "bigquery", "project": "p"}, "bigquery"),
        ({"type": "databricks", "host": "adb-1.example.test"}, "databricks://adb-1.example.test"),
        ({"type": "sqlserver", "server": "sql.internal", "port": 1433}, "mssql://sql.internal:1433"),
        ({"type": "oracle", "host": "x"}, None),
        ({"type": "postgres"}, None),
    ],
)
def test_namespace_per_adapter(target: dict, namespace: str | None) -> None:
    assert dataset_namespace(target) == namespace


def test_model_datasets_are_the_manifests_parents_and_relation(example_project: DbtProject) -> None:
    spec = ManifestIndex.load(example_project.manifest_path).model("order_totals")
    lineage = model_lineage(spec, "duckdb:///wh.duckdb")
    assert lineage.inputs == ("idbt_example.main.stg_orders", "idbt_example.main.stg_payments")
    assert lineage.outputs == ("idbt_example.main.order_totals",)
    inputs, outputs = lineage.datasets()
    assert outputs == [DatasetName("duckdb:///wh.duckdb", "idbt_example.main.order_totals")]
    assert {d.namespace for d in inputs} == {"duckdb:///wh.duckdb"}
    event = lineage.as_event()
    assert event["namespace"] == "duckdb:///wh.duckdb" and event["unique_id"] == spec.unique_id


def test_unknown_namespace_keeps_names_but_no_datasets(example_project: DbtProject) -> None:
    spec = ManifestIndex.load(example_project.manifest_path).model("stg_orders")
    lineage = model_lineage(spec, None)
    assert lineage.datasets() == ([], [])
    assert "namespace" not in lineage.as_event() and lineage.as_event()["outputs"]


def test_profile_target_renders_env_var_but_never_reads_a_secret(tmp_path: Path) -> None:
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: wh\n")
    (tmp_path / "profiles.yml").write_text(
        "wh:\n"
        "  target: \"{{ env_var('WH_TARGET', 'dev') }}\"\n"
        "  outputs:\n"
        "    prod:\n"
        "      type: postgres\n"
        "      host: \"{{ env_var('WH_HOST') }}\"\n"
        "      port: \"{{ env_var('WH_PORT', '5432') }}\"\n"
        "      password: \"{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}\"\n"
        "      user: \"{{ env_var('DBT_ENV_SECRET_USER') }}\"\n"
    )
    environ = {"WH_TARGET": "prod", "WH_HOST": "pg.internal", "DBT_ENV_SECRET_IDBT_TOKEN": SECRET}
    target = profile_target(tmp_path, tmp_path, environ=environ)
    assert target == {"type": "postgres", "host": "pg.internal", "port": "5432"}
    assert dataset_namespace(target) == "postgres://pg.internal:5432"
    with pytest.raises(KeyError):
        profile_target(tmp_path, tmp_path, target="missing", environ=environ)


def test_facet_fields_are_the_identity_allowlist() -> None:
    token = make_token()
    fields = identity_facet_fields(token.identity)
    assert set(fields) == {"issuer", "subject", "principal", "groups", "audience", "expires_at", "fingerprint"}
    assert identity_facet_fields({**fields, "email": "someone@example.test"}) == fields
    assert SECRET not in repr(fields)
