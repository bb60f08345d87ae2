"""docs/examples/mwaa/startup.sh, run natively with bash: it builds dbt's own virtualenv with plain pip against
constraints-dbt.txt, exports its interpreter, and the provider's runner runs a model with it.

MWAA itself is not run here (no AWS): what is checked is the script's behaviour on this machine, sourced as MWAA
uses it, with MWAA_AIRFLOW_COMPONENT set as MWAA sets it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from tests.conftest import registry_env
from tests.fixtures.dbt_projects import REPO, DbtProject, copy_project

pytestmark = pytest.mark.integration

SCRIPT = REPO / "docs" / "examples" / "mwaa" / "startup.sh"
CONSTRAINTS = REPO / "constraints-dbt.txt"
# What a sourced run leaves behind, printed after the script so the test reads it as MWAA's processes would.
PROBE = 'source "$0"; status=$?; echo "status=$status"; echo "IDBT_DBT_PYTHON=${IDBT_DBT_PYTHON:-}"'


def source_script(env: dict[str, str], timeout: float = 900) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    done = subprocess.run(
        ["bash", "-c", PROBE, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    tail = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(("status=", "IDBT_DBT_")))
    return done, tail


def script_env(venv: Path, **extra: str) -> dict[str, str]:
    env = registry_env()  # plain pip reaches the package registry through the machine's own proxy settings
    env.pop("IDBT_DBT_PYTHON", None)
    env.update(
        {
            "IDBT_DBT_VENV": str(venv),
            "IDBT_DBT_CONSTRAINTS": str(CONSTRAINTS),
            "IDBT_DBT_PACKAGES": "dbt-core dbt-duckdb",
            # A system interpreter, as on MWAA's image; not the test's Airflow virtualenv.
            "IDBT_BASE_PYTHON": "/usr/bin/python3",
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str], dict[str, str]]:
    venv = tmp_path_factory.mktemp("mwaa-startup") / "idbt-dbt-venv"
    # PIP_USER=true as on MWAA's images: pip refuses a virtualenv install under it unless the script unsets it.
    done, tail = source_script(script_env(venv, MWAA_AIRFLOW_COMPONENT="worker", PIP_USER="true"))
    return venv, done, tail


def test_a_worker_gets_the_virtualenv_and_the_exported_interpreter(
    built: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    venv, done, tail = built
    assert tail.get("status") == "0", done.stdout + done.stderr[-4000:]
    assert tail["IDBT_DBT_PYTHON"] == str(venv / "bin" / "python")
    version = subprocess.run([str(venv / "bin" / "dbt"), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0
    pinned = next(line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("dbt-core=="))
    assert f"installed: {pinned.split('==')[1]}" in version.stdout
    assert "duckdb" in version.stdout


def test_the_virtualenv_has_dbt_and_not_airflow(
    built: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    venv = built[0]
    for module, present in (("dbt.cli.main", True), ("airflow", False), ("airflow_provider_idbt", False)):
        probe = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True, cwd="/")
        assert (probe.returncode == 0) is present, module


def test_the_runner_runs_a_model_with_the_exported_interpreter(
    built: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
    example_project: DbtProject,
    tmp_path: Path,
) -> None:
    python = built[2]["IDBT_DBT_PYTHON"]
    project = copy_project(example_project.project_dir, tmp_path / "idbt_example")
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    project.manifest_path.write_bytes(example_project.manifest_path.read_bytes())

    def invocation(select: str, work: str) -> DbtInvocation:
        return DbtInvocation(
            project_dir=str(project.project_dir),
            profiles_dir=str(project.project_dir),
            select=select,
            target_path=str(tmp_path / work / "target"),
            log_path=str(tmp_path / work / "logs"),
            python=python,
            env=project.env,
            partial_parse_from=str(example_project.manifest_path.parent),
        )

    lines: list[str] = []
    seeded = SubprocessRunner().run(
        replace(invocation("package:idbt_example", "seed"), command="seed"), {}, lines.append
    )
    assert seeded.status == "success", lines[-20:]
    result = SubprocessRunner().run(invocation("stg_orders", "run"), {}, lines.append)
    assert result.status == "success", lines[-20:]


def test_other_components_build_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    for component in ("scheduler", "webserver"):
        done, tail = source_script(script_env(venv, MWAA_AIRFLOW_COMPONENT=component), timeout=60)
        assert tail == {"status": "0", "IDBT_DBT_PYTHON": ""}, done.stderr
        assert f"idbt startup: {component} runs no dbt" in done.stdout
    assert not venv.exists()


def test_a_missing_constraints_file_exports_nothing_and_says_what_to_set(tmp_path: Path) -> None:
    env = script_env(tmp_path / "venv", IDBT_DBT_CONSTRAINTS=str(tmp_path / "nowhere.txt"))
    done, tail = source_script(env, timeout=60)
    assert tail == {"status": "1", "IDBT_DBT_PYTHON": ""}
    assert f"constraints file {tmp_path / 'nowhere.txt'} not found; set IDBT_DBT_CONSTRAINTS" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_the_dry_run_prints_the_pip_command_with_the_constraints(tmp_path: Path) -> None:
    env = script_env(tmp_path / "venv", IDBT_STARTUP_DRY_RUN="1", IDBT_DBT_PACKAGES="dbt-core dbt-postgres")
    done, tail = source_script(env, timeout=60)
    assert tail == {"status": "0", "IDBT_DBT_PYTHON": ""}
    assert f"[dry-run] {tmp_path / 'venv'}/bin/python -m pip install" in done.stdout
    assert f"-c {CONSTRAINTS} dbt-core dbt-postgres" in done.stdout
    assert not (tmp_path / "venv").exists()


def test_the_script_is_executable_and_runs_without_being_sourced(tmp_path: Path) -> None:
    assert os.access(SCRIPT, os.X_OK)
    done = subprocess.run(
        [str(SCRIPT)],
        env=script_env(tmp_path / "venv", MWAA_AIRFLOW_COMPONENT="scheduler"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "runs no dbt" in done.stdout
