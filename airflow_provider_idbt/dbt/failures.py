"""Why a model run failed, as a typed error: permission mismatch, authentication failure, or a plain failure."""

from __future__ import annotations

from airflow_provider_idbt.dbt.json_log import DbtLogSummary
from airflow_provider_idbt.dbt.results import (
    FailureKind,
    RunResult,
    classify_messages,
    failure_messages,
    missing_grant,
    warehouse_message,
)
from airflow_provider_idbt.errors import DbtRunFailed, IdbtError, PermissionMismatch, WarehouseAuthFailed
from airflow_provider_idbt.identity.token import IdentityContext


def failure_kind(result: RunResult, log: DbtLogSummary, adapter: str | None) -> FailureKind:
    return classify_messages(failure_messages(result, log.messages), adapter)


def may_refresh_and_rerun(result: RunResult, log: DbtLogSummary, adapter: str | None) -> bool:
    """An auth failure before any statement of the model reached the warehouse: safe to run again.

    Without dbt's log there is no proof that nothing ran, so no second run.
    """
    if result.status == "success" or not log.found or log.model_statements:
        return False
    return failure_kind(result, log, adapter) == "auth"


def failure_for(
    model: str,
    identity: IdentityContext,
    result: RunResult,
    log: DbtLogSummary,
    adapter: str | None,
    *,
    refreshed: bool = False,
) -> IdbtError:
    """The error for a failed run; its message names identity, model and the warehouse's own words."""
    messages = failure_messages(result, log.messages)
    kind = classify_messages(messages, adapter)
    node = result.for_model(model)
    summary = (node.message if node is not None else None) or result.message or f"dbt exited with {result.returncode}"
    said = (warehouse_message(messages, kind, adapter) if kind != "other" else None) or summary
    if kind == "permission":
        grant = missing_grant(said, adapter)
        return PermissionMismatch(
            f"the warehouse refused identity `{identity.subject}` running model `{model}`"
            f"{f' (missing: {grant})' if grant else ''}: {said.strip()}; grant the missing privilege to the "
            "identity's warehouse role; retrying cannot help",
            model=model,
            subject=identity.subject,
            required=(grant,) if grant else (),
            held=tuple(f"group:{g}" for g in identity.groups),
            warehouse_message=said.strip(),
        )
    if kind == "auth":
        why = (
            "again after one token refresh"
            if refreshed
            else "after statements of the model had run, so it was not re-run here"
            if log.model_statements
            else "and dbt's log could not show that nothing had run"
        )
        return WarehouseAuthFailed(
            f"the warehouse rejected the token of identity `{identity.subject}` for model `{model}` {why}: "
            f"{said.strip()}"
        )
    return DbtRunFailed(f"model `{model}` failed: {summary.strip()}")
