"""Checks a task makes before it mints a token: is dbt's adapter there, and does the profile name a target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

from airflow_provider_idbt.dbt.failures import adapter_missing_message
from airflow_provider_idbt.dbt.profiles import project_profile_name
from airflow_provider_idbt.dbt.yaml_files import read_yaml
from airflow_provider_idbt.errors import ConfigurationError


def default_python() -> str:
    return sys.executable


def dbt_version(dbt_python: str | None) -> str | None:
    """The dbt-core version of this interpreter; unknown (not checked) for a separate dbt virtualenv."""
    if dbt_python is not None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dbt-core")
    except PackageNotFoundError:
        return None


def check_adapter_installed(adapter: str | None, dbt_python: str | None) -> None:
    """In this interpreter only: a separate dbt virtualenv is checked by dbt itself when it starts."""
    if adapter is None or dbt_python is not None:
        return
    if importlib.util.find_spec("dbt") is None or importlib.util.find_spec("dbt.adapters") is None:
        raise ConfigurationError(
            f"dbt is not installed in {default_python()}: `pip install airflow-provider-idbt[dbt]`, or give "
            "dbt_python= the interpreter of dbt's own virtualenv"
        )
    if importlib.util.find_spec(f"dbt.adapters.{adapter}") is None:
        raise ConfigurationError(adapter_missing_message(adapter, default_python()))


def check_profile_target(profiles_dir: str, project_dir: str, profile_name: str | None, target: str | None) -> None:
    """A user's profiles.yml exists and has the profile and target the task asks for (when plainly readable)."""
    file = Path(profiles_dir) / "profiles.yml"
    if not file.is_file():
        raise ConfigurationError(
            f"{file} does not exist: give profiles_dir= the directory holding your profiles.yml, or profile_args="
            " to generate one"
        )
    try:
        profiles = read_yaml(file) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{file} is not readable YAML ({exc}); fix the file") from None
    name = profile_name or project_profile_name(project_dir)
    if not isinstance(profiles, dict) or not name or "{" in name:
        return
    if name not in profiles:
        known = ", ".join(sorted(str(key) for key in profiles if key != "config")) or "none"
        raise ConfigurationError(
            f"{file} has no profile `{name}` (it has: {known}); fix profile_name= or the project's `profile:`"
        )
    profile = profiles[name]
    outputs = profile.get("outputs") if isinstance(profile, dict) else None
    wanted = target or (profile.get("target") if isinstance(profile, dict) else None)
    if isinstance(outputs, dict) and isinstance(wanted, str) and "{" not in wanted and wanted not in outputs:
        raise ConfigurationError(
            f"profile `{name}` in {file} has no target `{wanted}` (it has: {', '.join(sorted(map(str, outputs)))});"
            " fix target= or the profile's `target:`"
        )
