"""Before a token is minted: dbt's adapter is installed here, and profiles.yml has the profile and target."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.operators.setup_checks import check_adapter_installed, check_profile_target

PROFILES = """\
analytics:
  target: dev
  outputs:
    dev: {type: duckdb, path: x.duckdb}
    ci: {type: duckdb, path: y.duckdb}
"""


def _project(tmp_path: Path, profile: str = "analytics") -> Path:
    (tmp_path / "dbt_project.yml").write_text(f"name: p\nprofile: {profile}\n")
    (tmp_path / "profiles.yml").write_text(PROFILES)
    return tmp_path


def test_installed_adapter_passes_and_a_missing_one_names_its_extra() -> None:
    check_adapter_installed("duckdb", None)
    check_adapter_installed("snowflake", "/elsewhere/bin/python")  # another virtualenv: dbt checks it there
    with pytest.raises(ConfigurationError, match=r"`bigquery` is not installed.*airflow-provider-idbt\[bigquery\]"):
        check_adapter_installed("bigquery", None)


def test_profile_and_target_are_checked_against_profiles_yml(tmp_path: Path) -> None:
    project = _project(tmp_path)
    check_profile_target(str(project), str(project), None, None)
    check_profile_target(str(project), str(project), None, "ci")
    with pytest.raises(ConfigurationError, match=r"no target `prod` \(it has: ci, dev\)"):
        check_profile_target(str(project), str(project), None, "prod")
    with pytest.raises(ConfigurationError, match=r"no profile `other` \(it has: analytics\)"):
        check_profile_target(str(project), str(project), "other", None)


def test_a_templated_target_is_left_to_dbt(tmp_path: Path) -> None:
    project = _project(tmp_path)
    check_profile_target(str(project), str(project), None, "{{ env_var('T') }}")


def test_a_missing_profiles_yml_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"profiles\.yml does not exist: give profiles_dir="):
        check_profile_target(str(tmp_path / "nowhere"), str(tmp_path), None, None)
