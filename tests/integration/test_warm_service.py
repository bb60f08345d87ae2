"""`idbt warm-worker` as a service, with real dbt on DuckDB: tasks find the worker it started, it starts the worker
again when it dies, and it stops the worker when it is stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.dbt.warm import WarmRunner, WarmSettings, worker_pids
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR
from tests.fixtures.dbt_projects import DbtProject, copy_project
from tests.fixtures.proc import exposed_in_proc

pytestmark = pytest.mark.integration

TOKEN = "idbt-service-token-5d1f9a7c3e"  # made up; looked for in the worker's /proc and files


@dataclass
class Service:
    project: DbtProject
    profiles_dir: Path
    settings: WarmSettings
    runs_dir: Path
    proc: subprocess.Popen[str]
    output: Path
    runs: int = 0

    def invocation(self, select: str) -> DbtInvocation:
        self.runs += 1
        return DbtInvocation(
            project_dir=str(self.project.project_dir),
            profiles_dir=str(self.profiles_dir),
            select=select,
            target_path=str(self.runs_dir / f"run{self.runs}" / "target"),
            log_path=str(self.runs_dir / f"run{self.runs}" / "logs"),
            env=dict(self.project.env),
            partial_parse_from=str(self.project.manifest_path.parent),
        )

    def run(self, select: str) -> tuple[str, list[str]]:
        def refuse(reason: str) -> None:
            raise AssertionError(f"the run fell back to a new process: {reason}")

        lines: list[str] = []
        runner = WarmRunner(
            str(self.project.manifest_path), adapter="duckdb", settings=self.settings, on_fallback=refuse
        )
        result = runner.run(self.invocation(select), {TOKEN_ENV_VAR: TOKEN}, lines.append)
        return result.status, lines


def _wait(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


@pytest.fixture(scope="module")
def service(example_project: DbtProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("warm-service")
    project = copy_project(example_project.project_dir, root / "idbt_example")
    shutil.copytree(example_project.manifest_path.parent, project.manifest_path.parent)
    profile = render_profile("duckdb", {"path": str(project.duckdb_path)}, "idbt_example", "idbt")
    profiles_dir = write_profiles_dir(profile, root / "profiles")
    seed = DbtInvocation(
        project_dir=str(project.project_dir),
        profiles_dir=str(profiles_dir),
        select="package:idbt_example",
        target_path=str(root / "seed" / "target"),
        log_path=str(root / "seed" / "logs"),
        command="seed",
        env=dict(project.env),
    )
    assert SubprocessRunner().run(seed, {}, lambda line: None).status == "success"
    settings = WarmSettings(root / "sockets")
    output = root / "service.out"
    with open(output, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_idbt.commands.cli", "warm-worker",
             "--project-dir", str(project.project_dir), "--manifest", str(project.manifest_path),
             "--profiles-dir", str(profiles_dir), "--warm-dir", str(settings.directory)],
            stdout=out, stderr=subprocess.STDOUT, text=True, env={**os.environ, **project.env},
        )  # fmt: skip
    svc = Service(project, profiles_dir, settings, root / "runs", proc, output)
    try:
        _wait(lambda: len(worker_pids(settings.directory)) == 1, "the service's worker to be ready")
        yield svc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_tasks_use_the_worker_the_service_started(service: Service) -> None:
    (pid,) = worker_pids(service.settings.directory)
    status, lines = service.run("stg_orders")
    assert status == "success", lines[-20:]
    assert worker_pids(service.settings.directory) == [pid]  # no task started a worker of its own
    assert exposed_in_proc(pid, TOKEN) == []
    assert "worker pid" in service.output.read_text()


def test_the_service_starts_the_worker_again_when_it_dies(service: Service) -> None:
    (old,) = worker_pids(service.settings.directory)
    os.kill(old, signal.SIGKILL)
    _wait(lambda: worker_pids(service.settings.directory) not in ([], [old]), "a new worker")
    (new,) = worker_pids(service.settings.directory)
    assert new != old
    status, lines = service.run("stg_payments")
    assert status == "success", lines[-20:]
    assert worker_pids(service.settings.directory) == [new]


def test_stopping_the_service_stops_its_worker(service: Service) -> None:
    (pid,) = worker_pids(service.settings.directory)
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=30) == 0
    _wait(lambda: not _alive(pid), "the worker to stop", timeout=30)
    for path in service.settings.directory.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def test_bad_settings_are_refused_with_the_fix(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_idbt.commands.cli", "warm-worker", "--project-dir",
         str(tmp_path / "missing"), "--manifest", str(tmp_path / "m.json"), "--profiles-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--project-dir" in proc.stderr and "does not exist" in proc.stderr
