"""Airflow discovers the provider, its connection type and its plugin through the package's entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _airflow(home: Path, *args: str) -> str:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow), *args], env=env, capture_output=True, text=True, check=True, timeout=300)
    return proc.stdout


def test_providers_list_shows_the_provider(tmp_path: Path) -> None:
    providers = json.loads(_airflow(tmp_path, "providers", "list", "--output", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-idbt"]
    assert ours, providers
    from airflow_provider_idbt import __version__

    assert ours[0]["version"] == __version__


def test_connection_type_is_registered(tmp_path: Path) -> None:
    hooks = json.loads(_airflow(tmp_path, "providers", "hooks", "--output", "json"))
    ours = [h for h in hooks if h["connection_type"] == "idbt_oidc"]
    assert ours and ours[0]["class"] == "airflow_provider_idbt.hooks.oidc.OidcTokenHook"


def test_plugin_and_listener_are_registered(tmp_path: Path) -> None:
    plugins = json.loads(_airflow(tmp_path, "plugins", "--output", "json"))
    ours = [p for p in plugins if p["name"] == "idbt"]
    assert ours, plugins
    assert "identity_listener" in json.dumps(ours[0])


def test_dag_parse_does_not_import_dbt_or_cloud_sdks(tmp_path: Path) -> None:
    code = (
        "import sys, airflow_provider_idbt.task_group, airflow_provider_idbt.operators.dbt_identity;"
        "heavy=[m for m in ('dbt.cli.main','dbt','msal','google.auth','botocore') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
