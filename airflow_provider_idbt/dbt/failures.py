"""Why a model run failed, as a typed error: permission mismatch, authentication failure, or a plain failure."""

from __future__ import annotations

import re

from airflow_provider_idbt.dbt.json_log import DbtLogSummary
from airflow_provider_idbt.dbt.results import (
    FailureKind,
    RunResult,
    classify_messages,
    failure_messages,
    missing_grant,
    setup_fix,
    warehouse_message,
)
from airflow_provider_idbt.errors import (
    ConfigurationError,
    DbtRunFailed,
    IdbtError,
    PermissionMismatch,
    WarehouseAuthFailed,
    WarehouseUnreachable,
)
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses import warehouse

_NO_ADAPTER = re.compile(r"Could not find adapter type (\w+)")
_NO_PROFILE = re.compile(r"Could not find profile named '([^']*)'")
_NO_TARGET = re.compile(r"The profile '([^']*)' does not have a target named '([^']*)'")
# Connection set-up failures of the drivers dbt's adapters use (psycopg2, snowflake-connector, requests/urllib3,
# redshift_connector, pyodbc): the warehouse was never reached, so nothing of the model ran.
_UNREACHABLE = re.compile(
    r"could not connect to server|connection refused|could not translate host name|name or service not known|"
    r"no route to host|failed to establish a new connection|temporary failure in name resolution|"
    r"timeout expired|connection timed out|network is unreachable|max retries exceeded with url",
    re.IGNORECASE,
)


def adapter_missing_message(adapter: str, python: str) -> str:
    spec = warehouse(adapter)
    extra = (
        f"`pip install airflow-provider-idbt[{spec.extra}]`" if spec and spec.extra else f"`pip install dbt-{adapter}`"
    )
    return (
        f"the dbt adapter `{adapter}` is not installed in the Python that runs dbt ({python}): {extra} there, "
        f"or install dbt-{adapter} into dbt's own virtualenv and pass its interpreter as dbt_python="
    )


def setup_failure(messages: tuple[str, ...], adapter: str | None, python: str) -> IdbtError | None:
    """dbt could not start the node at all: no adapter, or no such profile or target."""
    for message in messages:
        if found := _NO_ADAPTER.search(message):
            return ConfigurationError(adapter_missing_message(found.group(1), python))
        if found := _NO_TARGET.search(message):
            return ConfigurationError(
                f"dbt profile `{found.group(1)}` has no target `{found.group(2)}`: fix `target=` or add the "
                "target to profiles.yml"
            )
        if found := _NO_PROFILE.search(message):
            return ConfigurationError(
                f"profiles.yml has no profile `{found.group(1)}`: fix `profile_name=` (or the project's `profile:`)"
                " or add it to profiles.yml"
            )
    return None


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
    refreshed: bool = False,
    python: str = "this interpreter",
) -> IdbtError:
    """The error for a failed run; its message names identity, model and the warehouse's own words."""
    messages = failure_messages(result, log.messages)
    setup = setup_failure(messages, adapter, python)
    if setup is not None:
        return setup
    if worker := setup_fix(messages, adapter):
        said, fix = worker
        return ConfigurationError(
            f"this worker cannot run the {adapter or 'warehouse'} adapter for model `{model}`: {said.strip()}"
            f"{f'; {fix}' if fix else ''}; retrying on this worker cannot help"
        )
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
    if not log.model_statements and (found := next((m for m in messages if _UNREACHABLE.search(m)), None)):
        return WarehouseUnreachable(
            f"the warehouse could not be reached for model `{model}`: {found.strip()}; check host, port and the "
            "network path from this worker (firewall, private endpoint); Airflow retries the task"
        )
    failed_others = [n for n in result.failed_nodes if n.unique_id != model]
    if failed_others and (node is None or node not in result.failed_nodes):
        names = ", ".join(
            f"{n.unique_id}{f' ({n.failures} failing rows)' if n.failures else ''}" for n in failed_others
        )
        first = (failed_others[0].message or "").strip()
        return DbtRunFailed(f"tests of `{model}` failed: {names}{f': {first}' if first else ''}")
    return DbtRunFailed(f"model `{model}` failed: {summary.strip()}")
