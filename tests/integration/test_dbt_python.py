"""dbt in its own virtualenv (`dbt_python=`): no Airflow, no provider, only dbt; both runners; clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.runner import EXPECT_DBT_VERSION_ENV, DbtInvocation, SubprocessRunner
from airflow_provider_idbt.dbt.warm import WarmRunner, WarmSettings, stop_workers
from tests.conftest import registry_env
from tests.fixtures.dbt_projects import REPO, DbtProject, copy_project

pytestmark = pytest.mark.integration

UV = Path(sys.executable).with_name("uv")


def _dbt_requirements() -> list[str]:
    """dbt-core and dbt-duckdb at the versions pinned for this Airflow's virtualenv."""
    from importlib.metadata import version

    return [f"dbt-core=={version('dbt-core')}", f"dbt-duckdb=={version('dbt-duckdb')}"]


@pytest.fixture(scope="module")
def dbt_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with dbt and its DuckDB adapter only, as platform teams build one beside Airflow's."""
    venv = tmp_path_factory.mktemp("dbt-venv") / "venv"
    subprocess.run([os.fspath(UV), "venv", "--quiet", "--python", sys.executable, os.fspath(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [os.fspath(UV), "pip", "install", "--quiet", "--python", os.fspath(python), *_dbt_requirements()],
        check=True,
        timeout=600,
        env=registry_env(),  # the package registry, through the machine's own proxy settings
    )
    return python


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", os.fspath(venv)], check=True)
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def project(example_project: DbtProject, tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    root = tmp_path_factory.mktemp("dbt-python")
    copied = copy_project(example_project.project_dir, root / "idbt_example")
    shutil.copytree(example_project.manifest_path.parent, copied.manifest_path.parent)
    return copied


def _invocation(project: DbtProject, python: Path, work: Path, select: str, **env: str) -> DbtInvocation:
    return DbtInvocation(
        project_dir=str(project.project_dir),
        profiles_dir=str(project.project_dir),
        select=select,
        target_path=str(work / "target"),
        log_path=str(work / "logs"),
        python=os.fspath(python),
        env={**project.env, **env},
        partial_parse_from=str(project.manifest_path.parent),
    )


def test_the_dbt_virtualenv_has_neither_airflow_nor_the_provider(dbt_venv: Path) -> None:
    for module in ("airflow", "airflow_provider_idbt"):
        probe = subprocess.run([os.fspath(dbt_venv), "-c", f"import {module}"], capture_output=True, cwd="/")
        assert probe.returncode != 0, module
    assert REPO.as_posix() not in subprocess.run(
        [os.fspath(dbt_venv), "-c", "import sys; print(sys.path)"], capture_output=True, text=True, cwd="/"
    ).stdout


@pytest.fixture
def warm_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "warm"
    stop_workers(tmp_path / "warm")


def test_both_runners_run_a_model_with_the_separate_dbt(
    dbt_venv: Path, project: DbtProject, tmp_path: Path, warm_dir: Path
) -> None:
    lines: list[str] = []
    seeded = SubprocessRunner().run(
        replace(_invocation(project, dbt_venv, tmp_path / "seed", "package:idbt_example"), command="seed"),
        {},
        lines.append,
    )
    assert seeded.status == "success", lines[-20:]
    fresh = SubprocessRunner().run(_invocation(project, dbt_venv, tmp_path / "a", "stg_orders"), {}, lines.append)
    assert fresh.status == "success", lines[-20:]
    fallbacks: list[str] = []
    runner = WarmRunner(
        str(project.manifest_path), adapter="duckdb", settings=WarmSettings(warm_dir), on_fallback=fallbacks.append
    )
    warm = runner.run(_invocation(project, dbt_venv, tmp_path / "b", "stg_customers"), {}, lines.append)
    assert warm.status == "success" and fallbacks == [], (fallbacks, lines[-20:])


def test_an_interpreter_without_dbt_says_so(bare_python: Path, project: DbtProject, tmp_path: Path) -> None:
    lines: list[str] = []
    result = SubprocessRunner().run(_invocation(project, bare_python, tmp_path, "stg_orders"), {}, lines.append)
    assert result.status == "invocation_error"
    assert f"dbt is not installed for {bare_python}" in result.message


def test_the_warm_runner_falls_back_when_the_interpreter_has_no_dbt(
    bare_python: Path, project: DbtProject, tmp_path: Path, warm_dir: Path
) -> None:
    fallbacks: list[str] = []
    runner = WarmRunner(
        str(project.manifest_path), adapter="duckdb", settings=WarmSettings(warm_dir), on_fallback=fallbacks.append
    )
    result = runner.run(_invocation(project, bare_python, tmp_path, "stg_orders"), {}, lambda line: None)
    assert len(fallbacks) == 1 and "dbt is not installed" in fallbacks[0]
    assert result.status == "invocation_error" and "dbt is not installed" in result.message


def test_another_dbt_minor_version_is_refused(dbt_venv: Path, project: DbtProject, tmp_path: Path) -> None:
    invocation = _invocation(project, dbt_venv, tmp_path, "stg_orders", **{EXPECT_DBT_VERSION_ENV: "1.9.4"})
    result = SubprocessRunner().run(invocation, {}, lambda line: None)
    assert result.status == "invocation_error"
    assert "but the manifest was built by dbt 1.9.4; install dbt-core 1.9.*" in result.message
