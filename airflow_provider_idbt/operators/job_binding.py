"""The operator's job-binding step: the running task's DAG, tags and bundle checked against its identity connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.errors import JobNotAllowed
from airflow_provider_idbt.operators.task_failure import to_airflow_error

if TYPE_CHECKING:
    from airflow_provider_idbt.hooks.base import IdentityHook
    from airflow_provider_idbt.operators.run_events import ModelRunEvents


def job_of(context: Any) -> tuple[str, tuple[str, ...], str | None]:
    """(dag id, DAG tags, DAG bundle name) of the running task, from its Airflow context.

    The bundle is the task SDK's ``RuntimeTaskInstance.bundle_instance`` (the one the worker parsed the DAG
    from); None where a task runs outside a bundle.
    """
    ti = context["ti"]
    dag = context.get("dag") or getattr(getattr(ti, "task", None), "dag", None)
    dag_id = str(getattr(dag, "dag_id", None) or ti.dag_id)
    tags = tuple(sorted(str(tag) for tag in (getattr(dag, "tags", None) or ())))
    bundle = getattr(ti, "bundle_instance", None)
    name = getattr(bundle, "name", None)
    return dag_id, tags, str(name) if name else None


def refuse_other_jobs(hook: IdentityHook, trail: ModelRunEvents) -> None:
    """Fail the task (no retry) with a ``permission_mismatch`` event when the connection is bound to other jobs.

    Runs before any token is minted; a malformed binding raises its ``ConnectionFieldError`` to the caller.
    """
    from airflow.sdk import get_current_context

    dag_id, tags, bundle_name = job_of(get_current_context())
    try:
        hook.check_job(dag_id, tags, bundle_name)
    except JobNotAllowed as refused:
        trail.permission_mismatch(None, refused, stage="job", connection=refused.conn_id)
        raise to_airflow_error(refused) from None
