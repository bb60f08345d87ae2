"""Read a DAG run's task tries and their `idbt.event/1` lines back through Airflow (metadata DB + task log reader)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_idbt.commands.audit import FROM_LOG, FROM_NOWHERE, FROM_XCOM, TaskAttempt
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.events import parse_event

log = logging.getLogger(__name__)


class RunNotFound(ConfigurationError):
    """The DAG run has no task instances in the metadata database."""


def read_run(dag_id: str, run_id: str, notes: list[str] | None = None) -> list[TaskAttempt]:
    """Every try of every task instance of the run, with the idbt events of its log; a try without a log takes
    its `idbt_events` XCom (the last try's), and one with neither says why it has no log.

    ``notes`` collects what the caller should tell the user (a log read that fell back to local files).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    attempts: list[TaskAttempt] = []
    notes = notes if notes is not None else []
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
        xcom_events = _xcom_events(session, dag_id, run_id)
        for ti in tis:
            for try_number in range(1, (ti.try_number or 0) + 1):
                record: Any = ti if try_number == ti.try_number else history.get((ti.task_id, ti.map_index, try_number))
                state = getattr(record, "state", None)
                events = try_log_events(record, ti, try_number, notes) if record is not None else None
                events_from, reason = FROM_LOG, None
                if events is None and try_number == ti.try_number and (ti.task_id, ti.map_index) in xcom_events:
                    events, events_from = xcom_events[(ti.task_id, ti.map_index)], FROM_XCOM
                elif events is None:
                    events_from, reason = FROM_NOWHERE, _why_no_log(ti, try_number)
                attempts.append(
                    TaskAttempt(
                        task_id=ti.task_id,
                        map_index=ti.map_index,
                        try_number=try_number,
                        state=str(getattr(state, "value", state)) if state else None,
                        operator=ti.operator,
                        events=list(events or ()),
                        events_from=events_from,
                        no_log_reason=reason,
                    )
                )
    return attempts


def _xcom_events(session: Any, dag_id: str, run_id: str) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(task id, map index) -> the `idbt_events` XCom of the task instance's last try (one query for the run)."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from airflow_provider_idbt.operators.run_events import EVENTS_XCOM_KEY
    from airflow_provider_idbt.ui.run_store import events_of

    rows = session.execute(
        select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == EVENTS_XCOM_KEY
        )
    ).all()
    found = {(row.task_id, row.map_index): events_of(row.value) for row in rows}
    return {key: [dict(e) for e in events] for key, events in found.items() if events is not None}


def _why_no_log(ti: Any, try_number: int) -> str:
    """Why a try has no task log to read, as far as the metadata database tells."""
    from airflow.configuration import conf

    run = getattr(ti, "dag_run", None)
    by = getattr(run, "triggered_by", None)
    folder = conf.get("logging", "base_log_folder")
    kept = "" if try_number == ti.try_number else "; Airflow keeps only the last try's idbt_events XCom"
    if str(getattr(by, "value", by)) == "test":
        return (
            "the run came from `airflow dags test`, which without --use-executor runs each task in-process and "
            f"writes no task log file (none under {folder}){kept}; run it with --use-executor, or under a "
            "scheduler, to keep every try's log"
        )
    return (
        f"Airflow's log reader found none and there is no file under {folder} (removed by log retention, or "
        f"remote logging this machine cannot reach?){kept}"
    )


def try_log_events(record: Any, ti: Any, try_number: int, notes: list[str]) -> list[dict[str, Any]] | None:
    """The idbt events of one try's task log: None when there is no log to read (an event-less log read through
    Airflow's log reader counts as none: for a missing file the reader returns only its own messages)."""
    events = [e for line in _log_lines(record, ti, try_number, ti.run_id, notes) if (e := parse_event(line))]
    if events or _local_logs(ti.dag_id, ti.task_id, ti.map_index, try_number, ti.run_id):
        return events
    return None


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


def _local_logs(dag_id: str, task_id: str, map_index: int, try_number: int, run_id: str) -> list[Path]:
    from airflow.configuration import conf

    base = Path(conf.get("logging", "base_log_folder")) / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    mapped = base / f"map_index={map_index}" if map_index >= 0 else base
    return sorted(mapped.glob(f"attempt={try_number}.log"))


def _local_lines(dag_id: str, task_id: str, map_index: int, try_number: int, run_id: str) -> Iterator[str]:
    for path in _local_logs(dag_id, task_id, map_index, try_number, run_id):
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
