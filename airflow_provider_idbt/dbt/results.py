"""What one dbt invocation did, read from dbt's own ``run_results.json``, and why a model failed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow_provider_idbt.warehouses import candidates, failure_rows_for
from airflow_provider_idbt.warehouses.spec import FailureKind

RunStatus = Literal["success", "error", "skipped", "invocation_error"]

_FAILED_NODE_STATUSES = frozenset({"error", "fail", "runtime error"})


@dataclass(frozen=True)
class NodeResult:
    """One node's line in ``run_results.json``."""

    unique_id: str
    status: str
    message: str | None
    execution_time: float
    adapter_response: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    failures: int | None = None


@dataclass(frozen=True)
class RunResult:
    """The outcome of one dbt child process.

    ``duration`` is the wall-clock time of the whole child (interpreter and dbt start-up included);
    ``elapsed`` is dbt's own ``elapsed_time``. ``message`` explains an ``invocation_error``.
    """

    returncode: int
    status: RunStatus
    nodes: tuple[NodeResult, ...] = ()
    duration: float = 0.0
    elapsed: float | None = None
    message: str = ""

    def for_model(self, unique_id: str) -> NodeResult | None:
        return next((node for node in self.nodes if node.unique_id == unique_id), None)

    @property
    def failed_nodes(self) -> tuple[NodeResult, ...]:
        return tuple(node for node in self.nodes if node.status in _FAILED_NODE_STATUSES)


def parse_run_results(data: Mapping[str, Any]) -> tuple[tuple[NodeResult, ...], float | None]:
    nodes = tuple(
        NodeResult(
            unique_id=str(item.get("unique_id", "")),
            status=str(item.get("status", "")),
            message=item.get("message"),
            execution_time=float(item.get("execution_time") or 0.0),
            adapter_response=item.get("adapter_response") or {},
            failures=item.get("failures"),
        )
        for item in data.get("results") or ()
    )
    elapsed = data.get("elapsed_time")
    return nodes, None if elapsed is None else float(elapsed)


def _status(returncode: int, nodes: tuple[NodeResult, ...]) -> RunStatus:
    if returncode not in (0, 1):
        return "invocation_error"
    if any(node.status in _FAILED_NODE_STATUSES for node in nodes) or returncode == 1:
        return "error"
    # dbt exits 0 when the selection matched nothing: for a one-model task that means nothing ran.
    if not nodes or all(node.status == "skipped" for node in nodes):
        return "skipped"
    return "success"


def load_run_result(
    returncode: int, run_results: Path | None, *, duration: float = 0.0, message: str = ""
) -> RunResult:
    """Build a :class:`RunResult` from a child's exit code and the ``run_results.json`` it left (if any)."""
    if run_results is None or not run_results.is_file():
        if returncode in (0, 1):
            message = message or "dbt wrote no run_results.json"
        return RunResult(returncode, "invocation_error", duration=duration, message=message)
    try:
        nodes, elapsed = parse_run_results(json.loads(run_results.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        return RunResult(returncode, "invocation_error", duration=duration, message=f"unreadable {run_results}: {exc}")
    status = _status(returncode, nodes)
    return RunResult(returncode, status, nodes, duration=duration, elapsed=elapsed, message=message)


def classify_message(message: str, adapter: str | None = None) -> FailureKind:
    """The kind of failure ``message`` shows, by the warehouse module's rows (all of them when ``adapter`` is None)."""
    for row in failure_rows_for(adapter):
        if row.pattern.search(message):
            return row.kind
    return "other"


def classify_messages(messages: Iterable[str], adapter: str | None = None) -> FailureKind:
    """The kind for a set of messages: a permission error anywhere wins over an auth error, then other."""
    kinds = {classify_message(message, adapter) for message in messages if message}
    precedence: tuple[FailureKind, ...] = ("setup", "permission", "auth")
    for kind in precedence:
        if kind in kinds:
            return kind
    return "other"


def failure_messages(result: RunResult, log_messages: Iterable[str] = ()) -> tuple[str, ...]:
    """What went wrong, in dbt's words: failed nodes' messages (or the invocation's), then its JSON log's."""
    first = [node.message or "" for node in result.failed_nodes] or [result.message]
    return tuple(dict.fromkeys(m for m in (*first, *log_messages) if m))


def classify_failure(result: RunResult, adapter: str | None = None, log_messages: Iterable[str] = ()) -> FailureKind:
    """Classify why ``result`` failed from its run result and, when given, dbt's structured log messages."""
    return classify_messages(failure_messages(result, log_messages), adapter)


def warehouse_message(messages: Iterable[str], kind: FailureKind, adapter: str | None = None) -> str | None:
    """The first message that shows ``kind``: the warehouse's own words for the failure."""
    return next((m for m in messages if classify_message(m, adapter) == kind), None)


def missing_grant(message: str, adapter: str | None = None) -> str | None:
    """What the warehouse says is missing (``table payments``, ``bigquery.tables.getData on table x``)."""
    for spec in candidates(adapter):
        for row in spec.missing_grants:
            found = row.find(message)
            if found:
                return found
    return None


def setup_fix(messages: Iterable[str], adapter: str | None = None) -> tuple[str, str | None] | None:
    """The first message a "setup" row matches, with that row's fix."""
    rows = [row for row in failure_rows_for(adapter) if row.kind == "setup"]
    for message in messages:
        for row in rows:
            if message and row.pattern.search(message):
                return message, row.fix
    return None
