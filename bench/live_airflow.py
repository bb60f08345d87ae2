"""A real Airflow deployment on this machine: `airflow scheduler`, `dag-processor`, `triggerer` and `api-server`
as separate processes, LocalExecutor, DAG runs triggered from the CLI and timed from the metadata database."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
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
    """LocalAirflow's installation, driven by the scheduler instead of `dags test`."""

    parallelism: int = 1
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
        return env

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
