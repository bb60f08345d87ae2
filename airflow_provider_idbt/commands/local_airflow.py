"""Run DAGs on this machine the way production does: metadata DB, api-server, executor, supervised tasks.

Used by `idbt demo` and by the end-to-end tests. `airflow dags test --use-executor` sends every task
through the configured executor to a supervised task process (secret masking, listeners, log files),
which needs an api-server for the task execution API; plain `airflow dags test` would run tasks
in-process and skip all of that.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_idbt.events import parse_event


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DB_CACHE_ENV = "IDBT_AIRFLOW_DB_CACHE"


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


@dataclass
class LocalAirflow:
    """An Airflow installation under one AIRFLOW_HOME, with SQLite (default) or another metadata DB."""

    home: Path
    dags_folder: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    sql_alchemy_conn: str | None = None
    api_port: int = 0
    # A folder of freshly migrated SQLite databases, one per Airflow version: a new home copies one instead of
    # running `airflow db migrate` again (seconds each). Defaults to $IDBT_AIRFLOW_DB_CACHE; unset, no cache.
    migrated_db_cache: Path | None = None
    _api: subprocess.Popen[bytes] | None = None
    _serialized: bool = False

    def __post_init__(self) -> None:
        if not self.api_port:
            self.api_port = free_port()

    @property
    def metadata_url(self) -> str:
        return self.sql_alchemy_conn or f"sqlite:///{self.home / 'airflow.db'}"

    def _latest_run(self, dag_id: str) -> tuple[str, str] | None:
        """The newest run of ``dag_id`` read from the metadata database: ``airflow dags list-runs`` would
        start one more Airflow process per run (seconds each) to say the same."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.metadata_url)
        try:
            with engine.connect() as db:
                row = db.execute(
                    text("select run_id, state from dag_run where dag_id = :dag_id order by id desc limit 1"),
                    {"dag_id": dag_id},
                ).first()
        finally:
            engine.dispose()
        return (str(row[0]), str(row[1])) if row is not None else None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        conn = self.metadata_url
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # A finished task is noticed on its next heartbeat: the default 5 s adds up to 5 s between
                # one-at-a-time tasks (measured in docs/performance.md); 1 s halves a local run's wall time.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            }
        )
        if conn.startswith("sqlite"):
            # SQLite takes one writer at a time: run one task at a time.
            env["AIRFLOW__CORE__PARALLELISM"] = "1"
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [_airflow_bin(), *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"`airflow {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cache = self.migrated_db_cache or (Path(os.environ[DB_CACHE_ENV]) if os.environ.get(DB_CACHE_ENV) else None)
        if cache is None or self.sql_alchemy_conn is not None:
            self.airflow("db", "migrate")
            return
        template = cache / f"airflow-{_airflow_version()}.db"
        if not template.exists():
            self.airflow("db", "migrate")
            cache.mkdir(parents=True, exist_ok=True)
            partial = template.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(self.home / "airflow.db", partial)
            partial.replace(template)  # atomic: a parallel test process sees a whole file or none
        else:
            shutil.copyfile(template, self.home / "airflow.db")

    def start_api_server(self, timeout: float = 120) -> None:
        log = open(self.home / "api-server.log", "ab")
        self._api = subprocess.Popen(
            [_airflow_bin(), "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            env=self.env(),
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            if self._api.poll() is not None:
                raise RuntimeError(f"airflow api-server exited early; see {self.home / 'api-server.log'}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"airflow api-server did not become healthy in {timeout:.0f}s")

    def api_server_running(self) -> bool:
        return self._api is not None and self._api.poll() is None

    def stop(self) -> None:
        if self._api is not None and self._api.poll() is None:
            os.killpg(self._api.pid, signal.SIGTERM)
            try:
                self._api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._api.pid, signal.SIGKILL)
                self._api.wait()
        self._api = None

    def __enter__(self) -> LocalAirflow:
        self.prepare()
        self.start_api_server()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> DagRunOutcome:
        """Serialize the DAGs (once per installation), run one DAG through the executor path, return its outcome."""
        if not self._serialized:
            self.airflow("dags", "reserialize")
            self._serialized = True
        args = ["dags", "test", "--use-executor", dag_id]
        if conf:
            args += ["--conf", json.dumps(dict(conf))]
        proc = self.airflow(*args, check=False, timeout=1800)
        latest = self._latest_run(dag_id)
        if latest is None:
            raise RuntimeError(f"no run of `{dag_id}` was recorded:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return DagRunOutcome(
            dag_id=dag_id,
            run_id=latest[0],
            state=latest[1],
            output=proc.stdout + proc.stderr,
            logs_root=self.home / "logs",
        )


@dataclass
class DagRunOutcome:
    dag_id: str
    run_id: str
    state: str
    output: str
    logs_root: Path

    def task_logs(self) -> dict[tuple[str, int], Path]:
        """(task_id, try) -> log file of this run."""
        base = self.logs_root / f"dag_id={self.dag_id}" / f"run_id={self.run_id}"
        found: dict[tuple[str, int], Path] = {}
        for path in base.glob("task_id=*/**/attempt=*.log"):
            task_id = next(p.name for p in path.parents if p.name.startswith("task_id=")).removeprefix("task_id=")
            found[(task_id, int(path.stem.removeprefix("attempt=")))] = path
        return found

    def events(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.task_logs().values()):
            for line in path.read_text(errors="replace").splitlines():
                event = parse_event(line)
                if event is not None:
                    yield event
