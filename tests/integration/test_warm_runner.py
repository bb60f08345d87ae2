"""The warm runner with real dbt on DuckDB: one warm worker, a forked child per run, nothing carried between runs."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pytest

from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.results import RunResult
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.dbt.warm import WarmRunner, WarmSettings, stop_workers, worker_pids
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR
from tests.fixtures.dbt_projects import DbtProject, copy_project
from tests.fixtures.proc import exposed_in_proc

pytestmark = pytest.mark.integration

TOKEN_A = "idbt-warm-token-a-3c9d1e7f5b"  # made up; the tests hunt for them everywhere
TOKEN_B = "idbt-warm-token-b-8e2a6c4d0f"
PROBE_MODEL = "select '{{ env_var(\"IDBT_PROBE\", \"unset\") }}' as probe"
SLOW_MODEL = "select 1 as id from (select sleep_ms(60000)) as pause"


@dataclass
class Setup:
    project: DbtProject
    profiles_dir: Path
    runs_dir: Path
    settings: WarmSettings
    lines: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    runs: int = 0

    def invocation(self, select: str, **env: str) -> DbtInvocation:
        self.runs += 1
        return DbtInvocation(
            project_dir=str(self.project.project_dir),
            profiles_dir=str(self.profiles_dir),
            select=select,
            target_path=str(self.runs_dir / f"run{self.runs}" / "target"),
            log_path=str(self.runs_dir / f"run{self.runs}" / "logs"),
            profile_name="idbt_example",
            target="ci",
            env={**self.project.env, **env},
            partial_parse_from=str(self.project.manifest_path.parent),
        )

    def runner(self) -> WarmRunner:
        return WarmRunner(
            str(self.project.manifest_path), adapter="duckdb", settings=self.settings, on_fallback=self.fallbacks.append
        )

    def run(self, invocation: DbtInvocation, token: str | None, runner: WarmRunner | None = None) -> RunResult:
        secrets = {TOKEN_ENV_VAR: token} if token else {}
        return (runner or self.runner()).run(invocation, secrets, self.lines.append)

    def worker_pid(self) -> int:
        """The running worker's pid (a new worker of the same key starts a new log)."""
        (pid,) = worker_pids(self.settings.directory)
        return pid


@pytest.fixture(scope="module")
def setup(example_project: DbtProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("warm")
    project = copy_project(example_project.project_dir, root / "idbt_example")
    shutil.copytree(example_project.manifest_path.parent, project.manifest_path.parent)
    extra = project.project_dir / "models" / "warm"
    extra.mkdir()
    (extra / "probe_env.sql").write_text(PROBE_MODEL)
    (extra / "slow_model.sql").write_text(SLOW_MODEL)
    # The profile renders the token (env_var() without a default fails when it is absent), so a run proves
    # its token reached dbt, and a run without one proves no earlier token stayed behind.
    profile = render_profile("duckdb", {"path": str(project.duckdb_path)}, "idbt_example", "ci")
    profile["idbt_example"]["outputs"]["ci"]["idbt_probe"] = "{{ env_var('" + TOKEN_ENV_VAR + "') }}"
    profiles_dir = write_profiles_dir(profile, root / "profiles")
    warm = Setup(project, profiles_dir, root / "runs", WarmSettings(root / "sockets", idle_timeout=300))
    seeded = SubprocessRunner().run(
        replace(warm.invocation("package:idbt_example"), command="seed"), {TOKEN_ENV_VAR: TOKEN_A}, warm.lines.append
    )
    assert seeded.status == "success", warm.lines[-20:]
    yield warm
    stop_workers(warm.settings.directory)


def _probe(setup: Setup) -> str:
    with duckdb.connect(str(setup.project.duckdb_path), read_only=True) as con:
        row = con.execute("select probe from main.probe_env").fetchone()
    assert row is not None
    return str(row[0])


def test_models_run_in_forked_children_of_one_worker(setup: Setup) -> None:
    first = setup.run(setup.invocation("stg_orders"), TOKEN_A)
    second = setup.run(setup.invocation("stg_payments"), TOKEN_A)
    assert first.status == second.status == "success", setup.lines[-20:]
    assert [node.unique_id for node in second.nodes] == ["model.idbt_example.stg_payments"]
    assert setup.fallbacks == []
    assert len(worker_pids(setup.settings.directory)) == 1  # started once, by the first run
    assert stat.S_IMODE(setup.settings.directory.stat().st_mode) == 0o700
    (sock,) = setup.settings.directory.glob("*.sock")
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0


def test_two_identities_back_to_back_share_no_token_or_environment(setup: Setup) -> None:
    a = setup.run(setup.invocation("probe_env", IDBT_PROBE="identity-a"), TOKEN_A)
    assert a.status == "success", setup.lines[-20:]
    assert _probe(setup) == "identity-a"
    b = setup.run(setup.invocation("probe_env"), TOKEN_B)
    assert b.status == "success", setup.lines[-20:]
    assert _probe(setup) == "unset"  # A's variable did not stay in the worker
    none = setup.run(setup.invocation("probe_env"), None)
    assert none.status == "invocation_error"  # and neither did a token: the profile cannot render
    assert "EnvVarMissingError" in none.message
    assert exposed_in_proc(setup.worker_pid(), TOKEN_A, TOKEN_B) == []


def _start_slow(setup: Setup, runner: WarmRunner) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    started = threading.Event()

    def on_line(line: str) -> None:
        setup.lines.append(line)
        if "START sql" in line and "slow_model" in line:
            started.set()

    invocation = setup.invocation("slow_model")
    thread = threading.Thread(
        target=lambda: results.append(runner.run(invocation, {TOKEN_ENV_VAR: TOKEN_A}, on_line)), daemon=True
    )
    thread.start()
    assert started.wait(60), setup.lines[-20:]
    return thread, results


def test_running_child_exposes_no_token_and_terminate_cancels_it(setup: Setup) -> None:
    runner = setup.runner()
    thread, results = _start_slow(setup, runner)
    pid = runner.pid
    assert pid is not None
    assert exposed_in_proc(pid, TOKEN_A) == []
    started = time.monotonic()
    runner.terminate(grace_seconds=5)
    thread.join(30)
    assert results and results[0].status == "invocation_error"
    assert "terminated" in results[0].message
    assert time.monotonic() - started < 20
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_worker_killed_mid_run_fails_clearly_and_the_next_run_starts_a_new_one(setup: Setup) -> None:
    runner = setup.runner()
    thread, results = _start_slow(setup, runner)
    pid = setup.worker_pid()
    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    assert results and results[0].status == "invocation_error"
    assert "warm dbt worker stopped during the run" in results[0].message
    again = setup.run(setup.invocation("stg_orders"), TOKEN_A)
    assert again.status == "success", setup.lines[-20:]
    assert setup.worker_pid() != pid


def test_a_changed_manifest_gets_a_new_worker(setup: Setup) -> None:
    assert setup.run(setup.invocation("stg_orders"), TOKEN_A).status == "success"
    before = setup.worker_pid()
    manifest = setup.project.manifest_path
    original = manifest.read_bytes()
    manifest.write_bytes(original + b"\n")  # the same JSON, another deployment
    try:
        result = setup.run(setup.invocation("stg_orders"), TOKEN_A)
    finally:
        manifest.write_bytes(original)
    assert result.status == "success", setup.lines[-20:]
    assert setup.worker_pid() != before and setup.fallbacks == []


def test_a_directory_open_to_others_falls_back_to_a_new_process(setup: Setup, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    fallbacks: list[str] = []
    runner = WarmRunner(
        str(setup.project.manifest_path),
        adapter="duckdb",
        settings=WarmSettings(shared),
        on_fallback=fallbacks.append,
    )
    result = setup.run(setup.invocation("stg_orders"), TOKEN_A, runner)
    assert result.status == "success", setup.lines[-20:]
    assert len(fallbacks) == 1 and "mode 0700" in fallbacks[0]
    assert not list(shared.iterdir())


def test_no_token_in_any_line_or_file(setup: Setup) -> None:
    assert not [line for line in setup.lines if TOKEN_A in line or TOKEN_B in line]
    files = [p for p in (*setup.settings.directory.rglob("*"), *setup.runs_dir.rglob("*")) if p.is_file()]
    assert any(p.name == "run_results.json" for p in files)
    for path in files:
        data = path.read_bytes()
        assert TOKEN_A.encode() not in data and TOKEN_B.encode() not in data, path
