"""Profile rendering: declared fields per adapter, the token only as an env_var() reference, private files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from airflow_provider_idbt.dbt.profiles import profile_fields, render_profile, write_profiles_dir
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR, TOKEN_REFERENCE

PG = {"host": "127.0.0.1", "user": "svc_analytics", "dbname": "warehouse", "schema": "analytics"}


def test_token_env_var_is_a_dbt_secret_name() -> None:
    assert TOKEN_ENV_VAR == "DBT_ENV_SECRET_IDBT_TOKEN"
    assert TOKEN_REFERENCE == "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"


def test_postgres_profile_carries_the_token_only_as_env_var() -> None:
    profile = render_profile("postgres", PG, "idbt_example", "prod")
    output = profile["idbt_example"]["outputs"]["prod"]
    assert profile["idbt_example"]["target"] == "prod"
    assert output == {
        "type": "postgres",
        **PG,
        "port": 5432,
        "threads": 1,
        "password": "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}",
    }


def test_duckdb_profile_has_no_secret_field() -> None:
    profile = render_profile("duckdb", {"path": "w.duckdb", "threads": 4}, "p", "t")
    assert profile["p"]["outputs"]["t"] == {"type": "duckdb", "path": "w.duckdb", "threads": 4}
    assert profile_fields("duckdb").token_field is None


def test_aliases_map_to_dbt_field_names() -> None:
    fields = {"host": "h", "username": "u", "database": "d", "schema": "s"}
    output = render_profile("postgres", fields, "p", "t")["p"]["outputs"]["t"]
    assert (output["user"], output["dbname"]) == ("u", "d")


@pytest.mark.parametrize("missing", ["host", "user", "dbname", "schema"])
def test_missing_required_field_is_named(missing: str) -> None:
    fields = {k: v for k, v in PG.items() if k != missing}
    with pytest.raises(ConfigurationError, match=f"field `{missing}` is required"):
        render_profile("postgres", fields, "p", "t")


def test_a_password_value_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="field `password` must not be set"):
        render_profile("postgres", {**PG, "password": "hunter2"}, "p", "t")


def test_unknown_field_and_adapter_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown field `hots`"):
        render_profile("postgres", {**PG, "hots": "x"}, "p", "t")
    with pytest.raises(ConfigurationError, match=r"adapter 'oracle'.*duckdb, fabric, postgres"):
        render_profile("oracle", {}, "p", "t")


def test_profiles_dir_is_private_and_readable_by_dbt(tmp_path: Path) -> None:
    profile = render_profile("postgres", PG, "idbt_example", "prod")
    folder = write_profiles_dir(profile, tmp_path / "profiles")
    file = folder / "profiles.yml"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert yaml.safe_load(file.read_text()) == profile
    assert "env_var(''DBT_ENV_SECRET_IDBT_TOKEN'')" in file.read_text()  # YAML doubles the quotes


def test_profiles_dir_open_to_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigurationError, match="accessible to others"):
        write_profiles_dir(render_profile("duckdb", {"path": "x"}, "p", "t"), shared)


def test_a_field_set_to_none_keeps_none_and_a_spelled_out_reference_is_accepted() -> None:
    from airflow_provider_idbt.dbt.profiles import profile_fields, render_target

    assert "sslmode" not in render_target("postgres", {**PG, "sslmode": None})
    fields = {"host": "h", "dbname": "d", "schema": "s", "cluster_identifier": "c", "db_user": "u"}
    row = profile_fields("redshift")
    assert row.templated
    for name, reference in row.templated.items():
        assert render_target("redshift", {**fields, name: reference})[name] == reference
