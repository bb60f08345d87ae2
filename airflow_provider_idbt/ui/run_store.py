"""The "Model runs" rows read from Airflow's metadata database: task_instance and task_instance_history rows and the
`idbt_events` XCom of each task instance's last try, a few queries per page whatever the number of models.

The list never reads task logs; :func:`task_instance_runs` (one task instance, a handful of tries) may read the
earlier tries' logs through commands/audit_logs.py.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.commands.audit import PROVIDER_OPERATORS
from airflow_provider_idbt.events import SCHEMA
from airflow_provider_idbt.operators.run_events import EVENTS_XCOM_KEY
from airflow_provider_idbt.ui.model_runs import (
    FROM_EVENTS,
    FROM_HISTORY,
    FROM_LOG,
    ModelRun,
    RunFilter,
    TryRecord,
    fold_task_instance,
    matches,
    ordered,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DEFAULT_LIMIT = 5000
TaskKey = tuple[str, str, str, int]  # dag_id, run_id, task_id, map_index


def events_of(value: Any) -> tuple[Mapping[str, Any], ...] | None:
    """The events an `idbt_events` XCom value holds (the database may hand back JSON text or the decoded list);
    None when the value is not a list of idbt events."""
    import json

    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list):
        return None
    return tuple(e for e in value if isinstance(e, dict) and e.get("schema") == SCHEMA)


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _key_filters(model: Any, flt: RunFilter, dag_ids: Collection[str] | None) -> list[Any]:
    """The parts of the filter the database applies: ids, the period (on the try's start, else its end)."""
    from sqlalchemy import func

    where: list[Any] = [model.try_number >= 1]
    for name in ("dag_id", "run_id", "task_id", "map_index"):
        wanted = getattr(flt, name)
        if wanted is not None:
            where.append(getattr(model, name) == wanted)
    if dag_ids is not None:
        where.append(model.dag_id.in_(sorted(dag_ids)))
    when = func.coalesce(model.start_date, model.end_date)
    if flt.since is not None:
        where.append(when >= flt.since)
    if flt.until is not None:
        where.append(when < flt.until)
    return where


def _rows_with_events(session: Session, model: Any, where: list[Any], limit: int | None) -> list[Any]:
    """``model``'s rows (task_instance or task_instance_history) of the provider's tasks, each with the
    `idbt_events` XCom of its task instance (the last try's: Airflow clears XComs when a try starts), newest first."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, func, or_, select

    query = (
        select(
            model.dag_id,
            model.run_id,
            model.task_id,
            model.map_index,
            model.try_number,
            model.state,
            model.operator,
            model.start_date,
            model.end_date,
            model.duration,
            model.hostname,
            XComModel.value,
        )
        .join(DagRun, and_(DagRun.dag_id == model.dag_id, DagRun.run_id == model.run_id))
        .outerjoin(
            XComModel,
            and_(
                XComModel.dag_run_id == DagRun.id,
                XComModel.task_id == model.task_id,
                XComModel.map_index == model.map_index,
                XComModel.key == EVENTS_XCOM_KEY,
            ),
        )
        .where(*where, or_(model.operator.in_(sorted(PROVIDER_OPERATORS)), XComModel.value.is_not(None)))
        .order_by(func.coalesce(model.start_date, model.end_date).desc().nulls_last())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


def _record(row: Any, events: tuple[Mapping[str, Any], ...] | None) -> TryRecord:
    return TryRecord(
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        try_number=row.try_number,
        state=_state(row.state),
        operator=row.operator,
        start_date=row.start_date,
        end_date=row.end_date,
        duration_s=row.duration,
        hostname=row.hostname,
        events=events,
        source=FROM_EVENTS if events is not None else FROM_HISTORY,
    )


@dataclass
class _TaskTries:
    """One task instance's tries as rows (by try number), and the events of its last try when that try is not
    among them (the period left it out): they still name the task's model."""

    tries: dict[int, TryRecord] = field(default_factory=dict)
    sibling_events: tuple[Mapping[str, Any], ...] | None = None

    def folded(self) -> list[ModelRun]:
        return fold_task_instance(self.tries.values(), sibling_events=self.sibling_events)


def _tries(
    session: Session, flt: RunFilter, dag_ids: Collection[str] | None, limit: int | None
) -> dict[TaskKey, _TaskTries]:
    """Two queries: the task instances (each its last try, with its events) and the earlier tries (history)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory

    by_task: dict[TaskKey, _TaskTries] = {}
    current = _rows_with_events(session, TaskInstance, _key_filters(TaskInstance, flt, dag_ids), limit)
    earlier = _rows_with_events(session, TaskInstanceHistory, _key_filters(TaskInstanceHistory, flt, dag_ids), limit)
    for row in current:
        task = by_task.setdefault((row.dag_id, row.run_id, row.task_id, row.map_index), _TaskTries())
        task.tries[row.try_number] = _record(row, events_of(row.value))
    for row in earlier:
        task = by_task.setdefault((row.dag_id, row.run_id, row.task_id, row.map_index), _TaskTries())
        if row.try_number not in task.tries:
            # An earlier try's own events are in its log only; the XCom joined here is its task instance's.
            task.tries[row.try_number] = _record(row, None)
            if task.sibling_events is None:
                task.sibling_events = events_of(row.value)
    return by_task


def model_runs(
    filter: RunFilter,
    *,
    dag_ids: Collection[str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
    session: Session | None = None,
) -> list[ModelRun]:
    """Every try of every model task that ``filter`` asks for, newest first (``model_runs.ordered``), at most
    ``limit`` (None: all). ``dag_ids`` restricts to the DAGs a user may read (None: no restriction; empty: none).

    Two queries whatever the number of models; no task log is read (earlier tries name their detail's log).
    """
    if dag_ids is not None and not dag_ids:
        return []
    if session is None:
        from airflow.utils.session import create_session

        with create_session() as own:
            return model_runs(filter, dag_ids=dag_ids, limit=limit, session=own)
    # The status and identity filters need each try's events: the database cannot apply them, so a page with
    # either reads every try the other filters allow (a period keeps that short) and cuts after matching.
    in_python = filter.status is not None or filter.identity is not None
    tasks = _tries(session, filter, dag_ids, None if in_python else limit)
    found = ordered(r for task in tasks.values() for r in task.folded() if matches(r, filter))
    return found if limit is None else found[:limit]


def export_rows(
    filter: RunFilter, *, dag_ids: Collection[str] | None = None, session: Session | None = None
) -> list[ModelRun]:
    """The rows of an audit export: every match, no limit (the view's export and `idbt audit --since` both)."""
    return model_runs(filter, dag_ids=dag_ids, limit=None, session=session)


def task_instance_runs(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = -1,
    *,
    with_logs: bool,
    session: Session | None = None,
) -> list[ModelRun]:
    """Every try of one task instance, oldest first. With ``with_logs`` the earlier tries (whose events Airflow's
    XCom no longer holds) are read from their task logs through Airflow's log reader (``source`` ``log``)."""
    if session is None:
        from airflow.utils.session import create_session

        with create_session() as own:
            return task_instance_runs(dag_id, run_id, task_id, map_index, with_logs=with_logs, session=own)
    flt = RunFilter(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
    task = _tries(session, flt, None, None).get((dag_id, run_id, task_id, map_index))
    if task is None:
        return []
    if with_logs and any(t.events is None for t in task.tries.values()):
        _read_logs(session, task, (dag_id, run_id, task_id, map_index))
    return task.folded()


def _read_logs(session: Session, task: _TaskTries, key: TaskKey) -> None:
    """Fill in the tries without events from their task logs (Airflow's log reader; local files as a fallback)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    from airflow_provider_idbt.commands.audit_logs import try_log_events

    dag_id, run_id, task_id, map_index = key
    ti = session.scalars(
        select(TaskInstance)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
        .options(joinedload(TaskInstance.dag_run))
    ).first()
    if ti is None:
        return
    # The log reader renders a try's file name from its DAG run, loaded with it (as Airflow's own log API does).
    history = {
        h.try_number: h
        for h in session.scalars(
            select(TaskInstanceHistory)
            .where(
                TaskInstanceHistory.dag_id == dag_id,
                TaskInstanceHistory.run_id == run_id,
                TaskInstanceHistory.task_id == task_id,
                TaskInstanceHistory.map_index == map_index,
            )
            .options(joinedload(TaskInstanceHistory.dag_run))
        )
    }
    for number, record in list(task.tries.items()):
        if record.events is not None:
            continue
        source = history.get(number) or (ti if number == ti.try_number else None)
        events = try_log_events(source, ti, number, []) if source is not None else None
        if events:
            task.tries[number] = replace(record, events=tuple(events), source=FROM_LOG)
