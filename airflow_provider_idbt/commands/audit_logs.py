"""Read a DAG run's task tries and their `idbt.event/1` lines back through Airflow (metadata DB + task log reader)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_idbt.commands.audit import TaskAttempt
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.events import parse_event

log = logging.getLogger(__name__)


class RunNotFound(ConfigurationError):
    """The DAG run has no task instances in the metadata database."""


def read_run(dag_id: str, run_id: str, notes: list[str] | None = None) -> list[TaskAttempt]:
    """Every try of every task instance of the run, with the idbt events of its log.

    ``notes`` collects what the caller should tell the user (a log read that fell back to local files).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    attempts: list[TaskAttempt] = []
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .options(joinedload(TaskInstance.dag_run))
        ).all()
        if not tis:
            raise RunNotFound(
                f"DAG run `{run_id}` of `{dag_id}` has no task instances; check the ids with "
                f"`airflow dags list-runs {dag_id}` (and that AIRFLOW_HOME points at the right installation)"
            )
        # Earlier tries live in task_instance_history; the log reader renders their file names from the
        # DAG run, which must be loaded with them (as Airflow's own log API does).
        history = {
            (h.task_id, h.map_index, h.try_number): h
            for h in session.scalars(
                select(TaskInstanceHistory)
                .where(TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id)
                .options(joinedload(TaskInstanceHistory.dag_run))
            ).all()
        }
        for ti in tis:
            for try_number in range(1, (ti.try_number or 0) + 1):
                record: Any = ti if try_number == ti.try_number else history.get((ti.task_id, ti.map_index, try_number))
                state = getattr(record, "state", None)
                lines = list(_log_lines(record, ti, try_number, run_id, notes if notes is not None else []))
                attempts.append(
                    TaskAttempt(
                        task_id=ti.task_id,
                        map_index=ti.map_index,
                        try_number=try_number,
                        state=str(getattr(state, "value", state)) if state else None,
                        operator=ti.operator,
                        events=[e for line in lines if (e := parse_event(line)) is not None],
                    )
                )
    return attempts


def _log_lines(record: Any, ti: Any, try_number: int, run_id: str, notes: list[str]) -> Iterator[str]:
    """The try's log as Airflow serves it (local file, served logs or remote logging); local files as a fallback."""
    if record is not None:
        try:
            from airflow.utils.log.log_reader import TaskLogReader

            reader = TaskLogReader()
            if reader.supports_read:
                metadata: Any = {"download_logs": True}  # the whole log in one read, as the UI's download does
                stream, _ = reader.read_log_chunks(record, try_number, metadata)
                lines = [m.model_dump_json() if hasattr(m, "model_dump_json") else str(m) for m in stream]
                if any(parse_event(line) for line in lines):
                    yield from lines
                    return
        except Exception as error:
            log.debug("log reader failure", exc_info=True)
            notes.append(f"{ti.task_id} try {try_number}: Airflow's log reader failed ({error}); read local files")
    yield from _local_lines(ti.dag_id, ti.task_id, ti.map_index, try_number, run_id)


def _local_lines(dag_id: str, task_id: str, map_index: int, try_number: int, run_id: str) -> Iterator[str]:
    from airflow.configuration import conf

    base = Path(conf.get("logging", "base_log_folder")) / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    mapped = base / f"map_index={map_index}" if map_index >= 0 else base
    for path in sorted(mapped.glob(f"attempt={try_number}.log")):
        yield from path.read_text(errors="replace").splitlines()


def run_audit(dag_id: str, run_id: str, *, as_json: bool = False) -> int:
    """Print the run's identity trail; 0 when every model has an identity-tagged end event, 1 if not, 2 on error."""
    from sqlalchemy.exc import SQLAlchemyError

    from airflow_provider_idbt.commands.audit import build_audit, render_json, render_text

    notes: list[str] = []
    try:
        audit = build_audit(dag_id, run_id, read_run(dag_id, run_id, notes))
    except RunNotFound as error:
        print(f"idbt audit: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(
            f"idbt audit: cannot read Airflow's metadata database ({type(error).__name__}: {error.args[0]}); "
            "run it where `airflow dags list-runs` works, with the same AIRFLOW_HOME and configuration",
            file=sys.stderr,
        )
        return 2
    for note in notes:
        print(f"idbt audit: {note}", file=sys.stderr)
    print(render_json(audit) if as_json else render_text(audit))
    return 0 if audit.complete else 1
