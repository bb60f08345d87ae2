"""End to end on CeleryExecutor: one DAG run's model tasks spread over two Celery workers, one queue per identity.

One deployment: `airflow api-server`, `scheduler` and `dag-processor`, CeleryExecutor with this machine's Redis as
broker (a database of the run's own) and PostgreSQL as result backend and metadata database, and two
`airflow celery worker` processes, `w1@<host>` serving queue `team_a` and `w2@<host>` serving `team_b`. Each worker
stands for its own host: its environment alone holds its team's identity connection (a secret of the dev identity
provider), its task processes report their own hostname and write their logs to its own folder. The dbt project (6
models in three layers, generated, on a PostgreSQL database of its own) routes models to team B in two ways:
`meta.idbt` in the project and `node_settings` in the DAG file (tests/e2e/dags/idbt_celery.py); the rest take the
task group's default, team A. A second DAG sends team B's identity to team A's queue, which must fail there. The
figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome
from airflow_provider_idbt.dbt.warm import WARM_DIR_ENV, stop_workers, worker_pids
from bench.live_airflow import LiveAirflow
from bench.synthetic_project import (
    PG_DATABASE_ENV,
    PG_HOST,
    PG_USER,
    SyntheticProject,
    create_pg_database,
    generate,
    run_dbt,
)
from tests.fixtures.celery_workers import HOSTNAME_CALLABLE, HOSTNAME_ENV, redis_broker_db, redis_values
from tests.fixtures.dbt_projects import REPO
from tests.fixtures.leak_scan import scan_files_for_secrets

pytestmark = pytest.mark.e2e

DAG_ID = "idbt_celery"
AUDIENCE = "idbt-e2e-celery"
MISROUTED_DAG_ID, MISROUTED_TASK = "idbt_celery_misrouted", "stg_0000_as_team_b"
INSTANCES_SQL = (
    "select task_id, state, try_number, queue, hostname, external_executor_id, start_date, end_date "
    "from task_instance where dag_id = :d and run_id = :r"
)
TABLES_SQL = "select table_name from information_schema.tables where table_schema = 'idbt_bench'"
MODELS = 6  # stg_0000-0001, int_0000-0001, mart_0000-0001: two tasks per layer, each layer after the one before


@dataclass(frozen=True)
class Worker:
    """One Celery worker: its node name, the queue it serves, the host it stands for, its identity connection."""

    name: str
    queue: str
    hostname: str
    conn_id: str
    subject: str


WORKERS = {
    "team_a": Worker("w1", "team_a", "w1.idbt-e2e.test", "idbt_team_a", "svc-team-a"),
    "team_b": Worker("w2", "team_b", "w2.idbt-e2e.test", "idbt_team_b", "svc-team-b"),
}
TEAM_B_META = {"meta": {"idbt": {"queue": "team_b", "identity_conn_id": "idbt_team_b"}}}
# Where each model task must run: team B's models by meta.idbt (stg_0001, int_0001) and by the DAG file's
# node_settings (mart_0001); the others by the task group's default.
TEAM_OF = {
    "models.stg_0000": "team_a",
    "models.int_0000": "team_a",
    "models.mart_0000": "team_a",
    "models.stg_0001": "team_b",
    "models.int_0001": "team_b",
    "models.mart_0001": "team_b",
}


@dataclass
class CeleryRun:
    home: Path
    state: str
    instances: dict[str, dict[str, Any]]
    celery_results: dict[str, str]  # Celery task id -> its status in the result backend
    outcomes: dict[str, DagRunOutcome]  # queue -> the run as that worker's log folder holds it
    worker_logs: dict[str, str]  # queue -> the worker process's own log
    misrouted: dict[str, Any]  # the misrouted DAG's one task instance, with its run's state
    tables: set[str]
    secrets: list[str]
    subjects: Counter[str]  # the subject of every token the identity provider issued
    dumps: list[bytes]
    broker: list[bytes]


def _psql(database: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", database, "-AtXqc", sql], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _dump(database: str) -> bytes:
    return subprocess.run(
        ["pg_dump", "-h", PG_HOST, "-U", PG_USER, "--data-only", database], capture_output=True, check=True
    ).stdout


def _rows(airflow: LiveAirflow, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in airflow.query(sql, **params)]


def _print(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Shown even when pytest captures output: the figures are for the reader of the CI log."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(*lines, sep="\n")
        return
    with capture.global_and_fixture_disabled():
        print("", *lines, sep="\n", flush=True)


def _first_run_id(airflow: LiveAirflow, dag_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow._check_services()
        rows = _rows(airflow, "select run_id from dag_run where dag_id = :d", d=dag_id)
        if rows:
            return str(rows[0]["run_id"])
        time.sleep(1)
    raise RuntimeError(f"the scheduler started no run of {dag_id} in {timeout:.0f}s; see {airflow.home}")


def _celery_results(airflow: LiveAirflow, celery_ids: list[str], timeout: float = 30) -> dict[str, str]:
    """Celery task id -> status in the result backend, once every one of ``celery_ids`` is done (a worker records
    its task's result after Airflow has the task's state: the last one may lag the DAG run by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(airflow, "select task_id, status from celery_taskmeta")
        results = {row["task_id"]: row["status"] for row in rows}
        if all(results.get(i) in ("SUCCESS", "FAILURE") for i in celery_ids) or time.monotonic() > deadline:
            return results
        time.sleep(0.5)


def _parse_and_seed(project: SyntheticProject) -> None:
    run_dbt(project, "parse", "--quiet")
    run_dbt(project, "seed", "--quiet")


def _worker_env(worker: Worker, home: Path, connection: dict[str, Any]) -> dict[str, str]:
    """What this worker's host has and no other process of the deployment: its identity connection, its
    hostname, its log folder."""
    return {
        f"AIRFLOW_CONN_{worker.conn_id.upper()}": json.dumps(connection),
        HOSTNAME_ENV: worker.hostname,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / worker.name / "logs"),
        # One warm dbt worker per host, started by the host's first task and forked for each task after it.
        "AIRFLOW__IDBT__EXECUTION_MODE": "warm",
        WARM_DIR_ENV: str(home / worker.name / "warm"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[CeleryRun]:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    started = time.perf_counter()
    timings: dict[str, float] = {}
    home = tmp_path_factory.mktemp("celery")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_celery.py", dags)
    suffix = f"{os.getpid()}_{os.urandom(3).hex()}"
    metadata_db, warehouse_db = f"idbt_e2e_celery_meta_{suffix}", f"idbt_e2e_celery_wh_{suffix}"
    model_config = {"stg_0001": TEAM_B_META, "int_0001": TEAM_B_META}
    project = generate(
        home / "project", MODELS, adapter="postgres", pg_database=warehouse_db, tests=False, model_config=model_config
    )
    clients = {
        queue: DevClient(
            f"{worker.name}-runner",
            f"{queue}-{os.urandom(12).hex()}",
            subject=worker.subject,
            groups=(queue,),
            audiences=(AUDIENCE,),
        )
        for queue, worker in WORKERS.items()
    }
    try:
        create_pg_database(metadata_db)
        create_pg_database(warehouse_db)
        with (
            redis_broker_db() as broker_url,
            DevIdentityProvider(list(clients.values()), audiences=[AUDIENCE], token_lifetime=3600).start() as idp,
        ):
            env = {
                "IDBT_ALLOW_DEV_IDP": "1",
                "IDBT_CELERY_PROJECT_DIR": str(project.project_dir),
                PG_DATABASE_ENV: warehouse_db,
                # The api-server checks the task tokens the scheduler signs: every process needs the same secret.
                # Airflow 3.3 writes one into airflow.cfg; 3.1 leaves it empty and each process makes up its own.
                "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
            }
            airflow = LiveAirflow(
                home=home / "airflow",
                dags_folder=dags,
                extra_env=env,
                sql_alchemy_conn=f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:5432/{metadata_db}",
                parallelism=4,
                executor="CeleryExecutor",
                celery_broker_url=broker_url,
            )
            try:
                with ThreadPoolExecutor(1) as pool:
                    parsed = pool.submit(_parse_and_seed, project)
                    airflow.prepare()
                    parsed.result()
                # Neither needs the api-server: they start while it does. The workers' tasks do need it.
                for service in ("dag-processor", "scheduler"):
                    airflow.start_process(service, [service])
                airflow.start_api_server()
                for queue, worker in WORKERS.items():
                    connection = idp.connection(clients[queue])
                    airflow.start_celery_worker(worker.name, [queue], 1, _worker_env(worker, home, connection))
                timings["deployment up"] = time.perf_counter() - started
                # Both DAGs are @once: the scheduler starts their runs as soon as they are serialized.
                run_ids = {dag_id: _first_run_id(airflow, dag_id) for dag_id in (DAG_ID, MISROUTED_DAG_ID)}
                timings["DAG runs created"] = time.perf_counter() - started
                run = airflow.wait_for_run(DAG_ID, run_ids[DAG_ID], timeout=240)
                timings["DAG run, queued to done"] = run.wall
                misrouted = airflow.wait_for_run(MISROUTED_DAG_ID, run_ids[MISROUTED_DAG_ID], timeout=120)
                instances = _rows(airflow, INSTANCES_SQL, d=DAG_ID, r=run.run_id)
                (misrouted_row,) = _rows(airflow, INSTANCES_SQL, d=MISROUTED_DAG_ID, r=misrouted.run_id)
                celery_results = _celery_results(airflow, [row["external_executor_id"] for row in instances])
            finally:
                airflow.stop()
                for worker in WORKERS.values():
                    stop_workers(home / worker.name / "warm")
            broker = redis_values(broker_url)
            secrets = [*idp.issued_tokens, *(client.client_secret for client in clients.values())]
            subjects = Counter(
                jwt.decode(token, options={"verify_signature": False})["sub"] for token in idp.issued_tokens
            )
        tables = set(_psql(warehouse_db, TABLES_SQL).split())
        dumps = [_dump(metadata_db), _dump(warehouse_db)]
        timings["set-up and run, in all"] = time.perf_counter() - started
        one, five, _ = os.getloadavg()
        _print(
            request,
            [f"[celery] {name}: {seconds:.1f} s" for name, seconds in timings.items()]
            + [f"[celery] {len(instances)} tasks on 2 workers; load average {one:.2f} (1 min) {five:.2f} (5 min)"],
        )
        yield CeleryRun(
            home=home,
            state=run.state,
            instances={row["task_id"]: row for row in instances},
            celery_results=celery_results,
            outcomes={
                queue: DagRunOutcome(DAG_ID, run.run_id, run.state, "", home / worker.name / "logs")
                for queue, worker in WORKERS.items()
            },
            worker_logs={
                queue: (home / "airflow" / f"{worker.name}.log").read_text(errors="replace")
                for queue, worker in WORKERS.items()
            },
            misrouted=misrouted_row | {"run_state": misrouted.state, "run_id": misrouted.run_id},
            tables=tables,
            secrets=secrets,
            subjects=subjects,
            dumps=dumps,
            broker=broker,
        )
    finally:
        for database in (metadata_db, warehouse_db):
            _psql("postgres", f"drop database if exists {database} with (force)")


def test_every_model_task_succeeded_on_try_1_through_celery(celery_run: CeleryRun) -> None:
    failed = sorted(task for task, row in celery_run.instances.items() if row["state"] != "success")
    assert celery_run.state == "success", failed
    assert set(celery_run.instances) == set(TEAM_OF)
    assert {row["try_number"] for row in celery_run.instances.values()} == {1}
    # Each task went through Celery: its Celery task id is recorded, and the result backend says it succeeded.
    ids = [row["external_executor_id"] for row in celery_run.instances.values()]
    assert all(ids) and len(set(ids)) == len(ids)
    assert {celery_run.celery_results.get(task_id) for task_id in ids} == {"SUCCESS"}
    assert celery_run.tables >= {name.removeprefix("models.") for name in TEAM_OF}  # and the seeds' tables


def test_each_queue_ran_on_its_own_worker_host(celery_run: CeleryRun) -> None:
    for task_id, row in celery_run.instances.items():
        worker = WORKERS[TEAM_OF[task_id]]
        assert (row["queue"], row["hostname"]) == (worker.queue, worker.hostname), task_id
    assert Counter(row["hostname"] for row in celery_run.instances.values()) == Counter(
        {"w1.idbt-e2e.test": 3, "w2.idbt-e2e.test": 3}
    )
    for queue, worker in WORKERS.items():
        # The worker's own log: the Celery node w1@<host> / w2@<host>, listening on its queue only.
        log = celery_run.worker_logs[queue]
        assert re.search(rf"\b{worker.name}@\S+ ready\.", log), log[-2000:]
        served = set(re.findall(r"^\s*\.> (\S+)\s+exchange=", log, re.MULTILINE))
        assert served == {queue}, log[:3000]


def test_the_two_workers_ran_at_the_same_time(celery_run: CeleryRun) -> None:
    """Each layer's two tasks (one per team) overlapped: the run was spread, not taken in turns."""
    rows = celery_run.instances
    overlapped = [
        layer
        for layer in ("stg", "int", "mart")
        if rows[f"models.{layer}_0000"]["start_date"] < rows[f"models.{layer}_0001"]["end_date"]
        and rows[f"models.{layer}_0001"]["start_date"] < rows[f"models.{layer}_0000"]["end_date"]
    ]
    assert overlapped, {task: (row["start_date"], row["end_date"]) for task, row in rows.items()}


def test_each_worker_logged_only_its_queues_tasks_each_with_its_own_token_and_identity(celery_run: CeleryRun) -> None:
    fingerprints: list[str] = []
    for queue, worker in WORKERS.items():
        outcome = celery_run.outcomes[queue]
        mine = sorted(task for task, team in TEAM_OF.items() if team == queue)
        assert sorted(task for task, _try in outcome.task_logs()) == mine
        events = list(outcome.events())
        issued = [e for e in events if e["kind"] == "token_issued"]
        assert sorted(e["task_id"] for e in issued) == mine  # one token minted per task
        for event in issued:
            identity = event["identity"]
            assert (identity["subject"], identity["groups"]) == (worker.subject, [queue]), event["task_id"]
            assert identity["audience"] == [AUDIENCE]
            fingerprints.append(identity["fingerprint"])
        ends = [e for e in events if e["kind"] == "model_run" and e["phase"] == "end"]
        assert sorted(e["task_id"] for e in ends) == mine
        for end in ends:
            assert end["status"] == "success", end
            assert end["identity"]["subject"] == worker.subject
    assert len(fingerprints) == len(set(fingerprints)) == len(TEAM_OF)


def test_each_host_ran_its_tasks_in_its_own_warm_dbt_worker(celery_run: CeleryRun) -> None:
    pids = {queue: worker_pids(celery_run.home / worker.name / "warm") for queue, worker in WORKERS.items()}
    # Started by the host's first task, forked for the other two; the hosts share none.
    assert [len(found) for found in pids.values()] == [1, 1], pids
    assert pids["team_a"] != pids["team_b"]
    for outcome in celery_run.outcomes.values():
        logs = "\n".join(path.read_text() for path in outcome.task_logs().values())
        assert "warm dbt worker cannot take this run" not in logs


def test_a_task_on_a_queue_whose_workers_lack_its_identity_fails_there_and_runs_as_no_one(
    celery_run: CeleryRun,
) -> None:
    row = celery_run.misrouted
    assert (row["run_state"], row["state"], row["try_number"]) == ("failed", "failed", 1)
    assert (row["queue"], row["hostname"]) == ("team_a", WORKERS["team_a"].hostname)
    outcome = DagRunOutcome(MISROUTED_DAG_ID, row["run_id"], "failed", "", celery_run.home / "w1" / "logs")
    assert [task_id for task_id, _try in outcome.task_logs()] == [MISROUTED_TASK]
    events = list(outcome.events())
    (failed,) = [e for e in events if e["kind"] == "task_lifecycle" and e["phase"] == "failed"]
    # A permanent error (no retry), naming the connection this host lacks.
    assert failed["error_class"] == "AirflowFailException"
    assert "connection `idbt_team_b` is not defined" in failed["error_message"]
    assert not [e for e in events if e["kind"] == "token_issued"]
    # One token per task that ran, each for its own queue's identity; none for the misrouted task.
    assert celery_run.subjects == Counter({worker.subject: 3 for worker in WORKERS.values()})


def test_no_issued_token_or_client_secret_anywhere(celery_run: CeleryRun) -> None:
    assert len(celery_run.secrets) >= len(TEAM_OF) + len(WORKERS), "the scan needs the real issued tokens"
    # Both workers' task logs and process logs, the scheduler's and the api-server's, the project's files.
    assert scan_files_for_secrets(celery_run.home, celery_run.secrets) > 20
    needles = [secret.encode() for secret in celery_run.secrets]
    for dump in celery_run.dumps:  # the metadata database (Celery's results included) and the warehouse
        assert len(dump) > 1_000
        for needle in needles:
            assert needle not in dump, "a secret leaked into a database"
    assert celery_run.broker, "the broker database was empty"
    for value in celery_run.broker:
        for needle in needles:
            assert needle not in value, "a secret leaked into the broker"
