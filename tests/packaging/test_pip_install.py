"""Plain pip with the committed constraints installs the provider, as Cloud Composer and MWAA users do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import registry_env

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]


def test_pip_install_with_constraints(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".demo", "node_modules", "target", "logs", "*.duckdb", ".*cache"
        ),
    )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = registry_env()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", "constraints.txt", ".[dbt,duckdb]"],
        cwd=source,
        env=env,
        check=True,
        timeout=900,
    )
    # Installed from a copy, not the working tree: the checks below see the built distribution.
    probe = (
        "import airflow_provider_idbt as p, airflow_provider_idbt.dbt.worker, importlib.metadata as m;"
        "from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup;"
        "print(p.__file__); print(m.version('dbt-core'))"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    module_file, dbt_version = out.stdout.split()
    assert str(env_dir) in module_file
    assert dbt_version.startswith("1.")
    airflow_env = {**env, "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
    listing = subprocess.run(
        [str(env_dir / "bin" / "airflow"), "providers", "list", "--output", "json"],
        env=airflow_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    providers = json.loads(next(line for line in listing.splitlines() if line.startswith("[")))
    assert "airflow-provider-idbt" in {p["package_name"] for p in providers}
    assert (env_dir / "bin" / "idbt").exists()
    assert sys.version_info >= (3, 11)
