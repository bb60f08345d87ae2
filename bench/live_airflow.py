"""A real Airflow deployment on this machine: `airflow scheduler`, `dag-processor`, `triggerer` and `api-server`
as separate processes, LocalExecutor (or CeleryExecutor with `airflow celery worker` processes), DAG runs triggered
from the CLI and timed from the metadata database."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_provider_idbt.commands.local_airflow import LocalAirflow, _airflow_bin

_DONE = {"success", "failed"}


@dataclass
class TaskTimes:
    task_id: str
    state: str
    start: datetime
    end: datetime

    @property
    def wall(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class RunTimes:
    """One DAG run as the metadata database recorded it: trigger (queued) to done, and each task."""

    dag_id: str
    run_id: str
    state: str
    queued: datetime
    end: datetime
    tasks: list[TaskTimes]

    @property
    def wall(self) -> float:
        return (self.end - self.queued).total_seconds()


@dataclass
class LiveAirflow(LocalAirflow):
    """LocalAirflow's installation, driven by the scheduler instead of `dags test`.

    ``executor`` other than LocalExecutor (``CeleryExecutor``) sends tasks elsewhere: start the processes that run
    them with :meth:`start_process` or :meth:`start_celery_worker`. For CeleryExecutor, ``celery_broker_url`` is
    required and the result backend defaults to the metadata database (``db+`` its SQLAlchemy URL).
    """

    parallelism: int = 1
    executor: str = "LocalExecutor"
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    _services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _engine: Any = None

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            {
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "1",
                # New DAG files are picked up within seconds, not the default 5 minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            }
        )
        executor = {"AIRFLOW__CORE__EXECUTOR": self.executor} if self.executor != "LocalExecutor" else {}
        if self.executor == "CeleryExecutor":
            executor.update(self._celery_env())
        # The caller's extra_env wins over these, as it does over LocalAirflow's settings.
        env.update({key: value for key, value in executor.items() if key not in self.extra_env})
        return env

    def _celery_env(self) -> dict[str, str]:
        if not self.celery_broker_url:
            raise ValueError("CeleryExecutor needs celery_broker_url (redis://127.0.0.1:6379/<db>, say)")
        backend = self.celery_result_backend or f"db+{self.metadata_url}"
        return {"AIRFLOW__CELERY__BROKER_URL": self.celery_broker_url, "AIRFLOW__CELERY__RESULT_BACKEND": backend}

    def start(self) -> None:
        self.prepare()
        self.start_api_server()
        for service in ("scheduler", "dag-processor", "triggerer"):
            log = open(self.home / f"{service}.log", "ab")
            self._services[service] = subprocess.Popen(
                [_airflow_bin(), service],
                env=self.env(),
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_process(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `airflow <args>` as a service named ``name`` (log: ``<home>/<name>.log``), with ``env`` over the
        deployment's environment; it is watched and stopped with the others."""
        if name in self._services:
            raise ValueError(f"a service named {name!r} is already started")
        log = open(self.home / f"{name}.log", "ab")
        self._services[name] = subprocess.Popen(
            [_airflow_bin(), *args],
            env={**self.env(), **(env or {})},
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self._services[name]

    def start_celery_worker(
        self, name: str, queues: list[str], concurrency: int = 1, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`airflow celery worker` serving ``queues``, Celery node ``<name>@<host>``; several share one machine:
        each has its own pid file, and none serves logs (they would all want the log server's one port)."""
        pid_file: Path = self.home / f"{name}.pid"
        args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", ",".join(queues)]
        args += ["--concurrency", str(concurrency), "--pid", str(pid_file), "--skip-serve-logs"]
        # Workers of one test deployment need not find each other: no start-up sync, no gossip.
        args += ["--without-mingle", "--without-gossip"]
        return self.start_process(name, args, env)

    @property
    def scheduler_pid(self) -> int:
        return self._services["scheduler"].pid

    def stop(self) -> None:
        for proc in self._services.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._services.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._services.clear()
        super().stop()
        if self._engine is not None:
            self._engine.dispose()

    def _check_services(self) -> None:
        for name, proc in self._services.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}); see {self.home / (name + '.log')}")

    def query(self, sql: str, **params: Any) -> list[Any]:
        import sqlalchemy

        if self._engine is None:
            conn = self.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
            self._engine = sqlalchemy.create_engine(conn, connect_args={"timeout": 30} if "sqlite" in conn else {})
        with self._engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text(sql), params))

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 600) -> None:
        """Until the dag-processor has serialized every DAG of ``dag_ids``."""
        deadline = time.monotonic() + timeout
        missing = set(dag_ids)
        while missing and time.monotonic() < deadline:
            self._check_services()
            rows = self.query("select distinct dag_id from serialized_dag")
            missing -= {row[0] for row in rows}
            if missing:
                time.sleep(2)
        if missing:
            raise RuntimeError(f"the dag-processor did not serialize {sorted(missing)} in {timeout:.0f}s")

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.airflow("dags", "unpause", dag_id)
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> RunTimes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_services()
            rows = self.query(
                "select state, queued_at, end_date from dag_run where dag_id = :dag and run_id = :run",
                dag=dag_id,
                run=run_id,
            )
            if rows and rows[0][0] in _DONE and rows[0][2] is not None:
                state, queued, end = rows[0]
                return RunTimes(dag_id, run_id, state, _utc(queued), _utc(end), self._tasks(dag_id, run_id))
            time.sleep(1)
        raise RuntimeError(f"{dag_id} run {run_id} did not finish in {timeout:.0f}s")

    def _tasks(self, dag_id: str, run_id: str) -> list[TaskTimes]:
        rows = self.query(
            "select task_id, state, start_date, end_date from task_instance where dag_id = :dag and run_id = :run",
            dag=dag_id,
            run=run_id,
        )
        return [
            TaskTimes(task_id, state or "none", _utc(start), _utc(end))
            for task_id, state, start, end in rows
            if start is not None and end is not None
        ]


def _utc(value: Any) -> datetime:
    """SQLite hands timestamps back as text, PostgreSQL as datetimes; both are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)
