"""Lifecycle and failure events for the provider's tasks, written into the task's own log.

The operator logs what only it knows (identity, model result); this listener covers the rest, including
failures before the operator could log anything (missing connection, stale manifest). It reads only the
task instance and its operator, never the metadata database, and never lets an exception escape: an
audit trail must not be the reason a task fails.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_idbt.version_compat import hookimpl

log = logging.getLogger("airflow_provider_idbt.listener")


def _provider_task(task_instance: Any) -> Any | None:
    task = getattr(task_instance, "task", None)
    if task is None or not getattr(task, "_idbt_provider_task", False):
        return None
    return task


def _emit(task_instance: Any, phase: str, error: Any = None) -> None:
    try:
        task = _provider_task(task_instance)
        if task is None:
            return
        from airflow_provider_idbt import events

        keys = events.RunKeys.from_task_instance(task_instance)
        fields: dict[str, Any] = {"phase": phase, "source": "listener"}
        if error is not None:
            fields["error_class"] = type(error).__name__ if isinstance(error, BaseException) else "str"
            fields["error_message"] = str(error)
        events.emit(log, events.build_event("task_lifecycle", keys, model=_model(task), **fields))
    except Exception:
        # Swallowed, not re-raised: Airflow would only log it, but pluggy would skip the listeners
        # registered after this one (OpenLineage's among them) for this hook call.
        log.warning("idbt listener could not emit a %s event", phase, exc_info=True)


def _model(task: Any) -> dict[str, Any]:
    """The model's unique id and datasets as the operator names them (from its manifest, no database)."""
    describe = getattr(task, "idbt_event_model", None)
    if callable(describe):
        return dict(describe())
    return {"unique_id": getattr(task, "_idbt_unique_id", None) or getattr(task, "model", None)}


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    _emit(task_instance, "running")


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _emit(task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _emit(task_instance, "failed", error)
