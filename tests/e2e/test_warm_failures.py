"""End to end, warm mode, when things go wrong: the warm worker killed mid-run, a re-deployed and a stale manifest,
and a task killed by Airflow mid-run, all through Airflow's executor path; then no token in any file or in /proc."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.dbt.warm import stop_workers, worker_pids
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, DbtProject, copy_project, run_dbt

pytestmark = pytest.mark.e2e

AUDIENCE = "idbt-e2e-warm"
SLOW_DAG, SLOW_TASK = "idbt_warm_slow", "slow_model"
QUICK_DAG, QUICK_TASK = "idbt_warm_quick", "stg_orders"
# A table model (a view would not run its query) that sleeps while the marker file exists.
SLOW_SQL = """{{{{ config(materialized='table') }}}}
select count(*) as paused
from (select sleep_ms(case when (select count(*) from glob('{marker}')) > 0 then 60000 else 0 end) as slept) as pause
where slept is null
"""
SLOW_STARTED = "START sql table model main.slow_model"
WORKER_DIED = "the warm dbt worker stopped during the run (killed or crashed); the retry starts a new one"
T = TypeVar("T")


@dataclass(frozen=True)
class ProcSample:
    """What other processes of this user could read about a warm process while a model ran."""

    label: str
    pid: int
    environ: bytes
    cmdline: bytes


@dataclass
class TaskRun:
    """One DAG run of one task: the outcome, the state of each try, and the warm workers around it."""

    outcome: DagRunOutcome
    tries: dict[int, str]
    workers_before: list[int]
    workers_after: list[int]

    def log(self, try_number: int) -> str:
        task_id = next(task for task, _ in self.outcome.task_logs())
        return self.outcome.task_logs()[(task_id, try_number)].read_text(errors="replace")

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.outcome.events() if event["kind"] == kind]


@dataclass
class Cancelled:
    run: TaskRun
    worker: int
    child: int
    child_gone_after: float | None  # seconds from the REST call to the child's exit
    worker_alive: bool
    next_run: TaskRun


@dataclass
class Redeployed:
    run: TaskRun
    old_worker_alive: bool


@dataclass
class WarmFailures:
    home: Path
    project: DbtProject
    killed: TaskRun
    killed_worker: int
    killed_child: int
    cancelled: Cancelled
    redeployed: Redeployed
    stale: TaskRun
    samples: list[ProcSample]
    secrets: list[str]


@pytest.fixture(scope="module")
def warm_failures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmFailures]:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    home = tmp_path_factory.mktemp("warm-failures")
    dags = home / "dags"
    dags.mkdir()
    project = copy_project(EXAMPLE_PROJECT, dags / "example_project")
    marker = home / "slow-while-this-exists"
    (project.project_dir / "models" / "warm").mkdir()
    (project.project_dir / "models" / "warm" / "slow_model.sql").write_text(SLOW_SQL.format(marker=marker))
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_warm_failures.py", dags)
    warm_dir = home / "warm"
    secret = os.urandom(16).hex()
    client = DevClient(
        client_id="e2e-warm", client_secret=secret, subject="svc-e2e-warm", groups=("analytics",), audiences=(AUDIENCE,)
    )
    with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:
        connection = idp.connection(client)
        env = {
            **project.env,
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_EXAMPLE_PROJECT_DIR": str(project.project_dir),
            "IDBT_WARM_DIR": str(warm_dir),
            "AIRFLOW_CONN_IDBT_DEV": json.dumps(connection),
            # The REST API marks a running task failed; loopback only, so every caller may be admin.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        }
        run_dbt(project.project_dir, "parse", env=env)
        run_dbt(project.project_dir, "seed", env=env)
        samples: list[ProcSample] = []
        try:
            with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
                airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
                killed, killed_worker, killed_child = _kill_worker_mid_run(airflow, warm_dir, marker, samples)
                cancelled = _cancel_mid_run(airflow, warm_dir, marker, samples)
                redeployed = _redeploy(airflow, warm_dir, project, env)
                stale = _stale_manifest(airflow, warm_dir, project)
                samples += [_sample("worker at the end", pid) for pid in worker_pids(warm_dir) if _alive(pid)]
            yield WarmFailures(
                home=home,
                project=project,
                killed=killed,
                killed_worker=killed_worker,
                killed_child=killed_child,
                cancelled=cancelled,
                redeployed=redeployed,
                stale=stale,
                samples=samples,
                secrets=[*idp.issued_tokens, secret],
            )
        finally:
            stop_workers(warm_dir)


# -- the scenarios, run once per module in this order -------------------------------------------------------


def _kill_worker_mid_run(
    airflow: LocalAirflow, warm_dir: Path, marker: Path, samples: list[ProcSample]
) -> tuple[TaskRun, int, int]:
    """SIGKILL the warm worker while try 1 sleeps in the model; try 2 must start a new worker."""
    marker.touch()
    before, earlier = worker_pids(warm_dir), _slow_logs(airflow)
    with _in_background(airflow, SLOW_DAG) as pending:
        worker, child = _wait_for_slow_model(airflow, warm_dir, pending, earlier)
        samples += [_sample("worker while a model ran", worker), _sample("forked child", child)]
        os.kill(worker, signal.SIGKILL)
        marker.unlink()  # the retry, seconds later, runs the model without sleeping
    return _task_run(airflow, pending.result(), SLOW_TASK, before, warm_dir), worker, child


def _cancel_mid_run(airflow: LocalAirflow, warm_dir: Path, marker: Path, samples: list[ProcSample]) -> Cancelled:
    """Mark the running task failed through the REST API: Airflow kills the task, on_kill cancels the warm run."""
    marker.touch()
    before, earlier = worker_pids(warm_dir), _slow_logs(airflow)
    gone_after: float | None = None
    with _in_background(airflow, SLOW_DAG) as pending:
        worker, child = _wait_for_slow_model(airflow, warm_dir, pending, earlier)
        samples += [_sample("worker while a model ran", worker), _sample("forked child", child)]
        (run,) = _api(airflow, "GET", f"/dags/{SLOW_DAG}/dagRuns?state=running")["dag_runs"]
        asked = time.monotonic()
        _api(
            airflow,
            "PATCH",
            f"/dags/{SLOW_DAG}/dagRuns/{_quote(run['dag_run_id'])}/taskInstances/{SLOW_TASK}",
            {"new_state": "failed"},
        )
        if _wait_until(lambda: not _alive(child), 60):
            gone_after = time.monotonic() - asked
        marker.unlink()
    cancelled = _task_run(airflow, pending.result(), SLOW_TASK, before, warm_dir)
    worker_alive = _alive(worker)
    next_run = _task_run(airflow, airflow.run_dag(QUICK_DAG), QUICK_TASK, worker_pids(warm_dir), warm_dir)
    return Cancelled(cancelled, worker, child, gone_after, worker_alive, next_run)


def _redeploy(airflow: LocalAirflow, warm_dir: Path, project: DbtProject, env: dict[str, str]) -> Redeployed:
    """Change a model and re-parse (a new deployment) while a worker holds the old manifest."""
    (old,) = worker_pids(warm_dir)
    _set_deployment(project, 2)
    run_dbt(project.project_dir, "parse", env=env)
    run = _task_run(airflow, airflow.run_dag(QUICK_DAG), QUICK_TASK, [old], warm_dir)
    # A stale worker stops taking runs and leaves once its last run is done.
    return Redeployed(run, old_worker_alive=not _wait_until(lambda: not _alive(old), 15))


def _stale_manifest(airflow: LocalAirflow, warm_dir: Path, project: DbtProject) -> TaskRun:
    """Change the model after the parse, without re-parsing: the deployed manifest no longer matches it."""
    _set_deployment(project, 3)
    return _task_run(airflow, airflow.run_dag(QUICK_DAG), QUICK_TASK, worker_pids(warm_dir), warm_dir)


def _set_deployment(project: DbtProject, number: int) -> None:
    """Give stg_orders a column that says which version of its SQL built it."""
    model = project.project_dir / "models" / "staging" / "stg_orders.sql"
    sql = model.read_text()
    if "idbt_deployment" not in sql:
        sql = sql.replace("select", "select\n    0 as idbt_deployment,", 1)
    model.write_text(re.sub(r"\d+ as idbt_deployment", f"{number} as idbt_deployment", sql))


# -- helpers -----------------------------------------------------------------------------------------------


class _in_background:
    """Run one DAG in a thread while the test acts on it; leaving the block waits for the run to end."""

    def __init__(self, airflow: LocalAirflow, dag_id: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self.future: Future[DagRunOutcome] = self._pool.submit(airflow.run_dag, dag_id)

    def __enter__(self) -> Future[DagRunOutcome]:
        return self.future

    def __exit__(self, *exc: object) -> None:
        self.future.result(timeout=600)
        self._pool.shutdown()


def _slow_logs(airflow: LocalAirflow) -> set[Path]:
    return set((airflow.home / "logs" / f"dag_id={SLOW_DAG}").glob("run_id=*/task_id=*/attempt=*.log"))


def _wait_for_slow_model(
    airflow: LocalAirflow, warm_dir: Path, pending: Future[DagRunOutcome], earlier: set[Path]
) -> tuple[int, int]:
    """The warm worker's pid and its forked child's, once this run's task log says dbt started the slow model."""

    def started() -> tuple[int, int] | None:
        if pending.done():
            raise AssertionError(f"the DAG run ended before the slow model started:\n{pending.result().output[-3000:]}")
        if not any(SLOW_STARTED in _read(path) for path in _slow_logs(airflow) - earlier):
            return None
        workers = [pid for pid in worker_pids(warm_dir) if _alive(pid)]
        children = _forked_children(workers[0]) if len(workers) == 1 else []
        return (workers[0], children[0]) if len(children) == 1 else None

    found = _poll(started, 180, "the slow model to start in a warm worker's forked child")
    time.sleep(1)  # past dbt's START line: the model's query is in its 60 s sleep
    return found


def _task_run(
    airflow: LocalAirflow, outcome: DagRunOutcome, task_id: str, before: list[int], warm_dir: Path
) -> TaskRun:
    path = f"/dags/{outcome.dag_id}/dagRuns/{_quote(outcome.run_id)}/taskInstances/{task_id}/tries"
    tries = {ti["try_number"]: ti["state"] for ti in _api(airflow, "GET", path)["task_instances"]}
    return TaskRun(outcome, tries, before, worker_pids(warm_dir))


def _api(airflow: LocalAirflow, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{airflow.api_port}/api/v2{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _quote(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _sample(label: str, pid: int) -> ProcSample:
    proc = Path(f"/proc/{pid}")
    return ProcSample(label, pid, (proc / "environ").read_bytes(), (proc / "cmdline").read_bytes())


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _forked_children(pid: int) -> list[int]:
    """The live children ``pid`` forked without exec (same argv): a warm worker's runs, not its resource tracker."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:
            continue
    argv = _read_bytes(Path(f"/proc/{pid}/cmdline"))
    return [child for child in found if _alive(child) and _read_bytes(Path(f"/proc/{child}/cmdline")) == argv]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _poll(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f}s for {what}")


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# -- 1. the warm worker killed mid-run ---------------------------------------------------------------------


def test_worker_killed_mid_run_fails_the_try_clearly(warm_failures: WarmFailures) -> None:
    run = warm_failures.killed
    assert run.tries == {1: "failed", 2: "success"}, run.outcome.output[-3000:]
    first = run.log(1)
    assert WORKER_DIED in first
    (failed,) = [e for e in run.events("model_run") if e["phase"] == "end" and e["try_number"] == 1]
    assert failed["status"] != "success" and WORKER_DIED in json.dumps(failed)


def test_the_retry_started_a_new_worker_and_succeeded(warm_failures: WarmFailures) -> None:
    run = warm_failures.killed
    assert run.outcome.state == "success", run.outcome.output[-3000:]
    assert not _alive(warm_failures.killed_worker)
    assert not _alive(warm_failures.killed_child)  # the run's forked child died with its worker
    (new,) = run.workers_after
    assert new != warm_failures.killed_worker
    second = run.log(2)
    assert "warm dbt worker cannot take this run" not in second  # the retry ran warm, not in a new process
    (ended,) = [e for e in run.events("model_run") if e["phase"] == "end" and e["try_number"] == 2]
    assert ended["status"] == "success"


# -- 2. a re-deployed manifest and a stale one -------------------------------------------------------------


def test_a_redeployed_manifest_retires_the_worker_and_runs_the_new_model(warm_failures: WarmFailures) -> None:
    import duckdb

    run = warm_failures.redeployed.run
    assert run.outcome.state == "success" and run.tries == {1: "success"}, run.outcome.output[-3000:]
    (old,) = run.workers_before
    (new,) = run.workers_after
    assert new != old and not warm_failures.redeployed.old_worker_alive
    assert "warm dbt worker cannot take this run" not in run.log(1)
    with duckdb.connect(str(warm_failures.project.duckdb_path), read_only=True) as con:
        assert con.execute("select distinct idbt_deployment from main.stg_orders").fetchall() == [(2,)]


def test_a_manifest_that_no_longer_matches_the_model_fails_fast(warm_failures: WarmFailures) -> None:
    run = warm_failures.stale
    assert run.outcome.state == "failed"
    assert run.tries == {1: "failed"}  # retries=1, and no second try: re-running cannot help
    log = run.log(1)
    assert "AirflowFailException" in log and "StaleManifest" in log
    assert "changed after the dbt manifest" in log and "the task would run SQL the manifest does not describe" in log
    assert run.workers_after == run.workers_before  # refused before any worker was asked
    assert all(_alive(pid) for pid in run.workers_after)


# -- 3. Airflow kills the task during a warm run -----------------------------------------------------------


def test_a_killed_task_cancels_its_forked_child_promptly(warm_failures: WarmFailures) -> None:
    cancelled = warm_failures.cancelled
    assert cancelled.child_gone_after is not None, "the forked child outlived its task"
    assert cancelled.child_gone_after < 15, f"the forked child took {cancelled.child_gone_after:.1f}s to go"
    assert cancelled.run.outcome.state == "failed"
    assert cancelled.run.tries == {1: "failed"}
    log = cancelled.run.log(1)
    assert "Server indicated the task shouldn't be running anymore" in log  # Airflow sent the task SIGTERM
    # on_kill cancelled the warm run (dbt cancelled its query), and the task then logged its own end, instead of
    # being SIGKILLed mid-wait by the supervisor's escalation.
    assert "CANCEL query model.idbt_example.slow_model" in log
    assert "DbtRunFailed: model `model.idbt_example.slow_model` failed: dbt was terminated (task killed)" in log
    (ended,) = [e for e in cancelled.run.events("model_run") if e["phase"] == "end"]
    assert ended["status"] == "invocation_error"


def test_the_worker_survives_a_killed_task_and_serves_the_next_run(warm_failures: WarmFailures) -> None:
    cancelled = warm_failures.cancelled
    assert cancelled.worker_alive
    assert cancelled.run.workers_after == [cancelled.worker]
    nxt = cancelled.next_run
    assert nxt.outcome.state == "success" and nxt.tries == {1: "success"}, nxt.outcome.output[-3000:]
    assert nxt.workers_after == [cancelled.worker]
    assert "warm dbt worker cannot take this run" not in nxt.log(1)


# -- 4. no token anywhere ----------------------------------------------------------------------------------


def test_no_token_in_worker_files_airflow_home_or_proc(warm_failures: WarmFailures) -> None:
    tokens = warm_failures.secrets
    runs = (
        warm_failures.killed,
        warm_failures.cancelled.run,
        warm_failures.cancelled.next_run,
        warm_failures.redeployed.run,
        warm_failures.stale,
    )
    # Every try that got a token is scanned for: the IdP minted one per token_issued event, plus the client secret.
    assert len(tokens) == 1 + sum(len(run.events("token_issued")) for run in runs) >= 6
    needles = [token.encode() for token in tokens]
    scanned = 0
    for root in (warm_failures.home / "warm", warm_failures.home / "airflow"):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_socket():
                data = path.read_bytes()
                scanned += 1
                for needle in needles:
                    assert needle not in data, f"a token leaked into {path.relative_to(warm_failures.home)}"
    assert scanned > 10
    labels = {sample.label for sample in warm_failures.samples}
    assert {"worker while a model ran", "forked child", "worker at the end"} <= labels
    for sample in warm_failures.samples:
        assert sample.environ and sample.cmdline, sample.label
        for needle in needles:
            assert needle not in sample.environ, f"a token is in /proc/{sample.pid}/environ ({sample.label})"
            assert needle not in sample.cmdline, f"a token is in /proc/{sample.pid}/cmdline ({sample.label})"
    for run in runs:
        for token in tokens:
            assert token not in run.outcome.output
