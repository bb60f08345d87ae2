"""What one dbt invocation did, read from dbt's own ``run_results.json``, and why a model failed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RunStatus = Literal["success", "error", "skipped", "invocation_error"]
FailureKind = Literal["permission", "auth", "other"]

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


@dataclass(frozen=True)
class FailurePattern:
    """A warehouse error text that tells what kind of failure a node hit. ``adapter="*"`` matches any."""

    adapter: str
    kind: FailureKind
    pattern: re.Pattern[str]


def _row(adapter: str, kind: FailureKind, regex: str) -> FailurePattern:
    return FailurePattern(adapter, kind, re.compile(regex, re.IGNORECASE))


# Auth rows come first: "permission denied" can appear inside a login failure message.
FAILURE_PATTERNS: tuple[FailurePattern, ...] = (
    _row("postgres", "auth", r"password authentication failed|\b28P01\b|\b28000\b"),
    _row("postgres", "auth", r"pam authentication failed|no pg_hba\.conf entry"),
    _row("postgres", "auth", r"FATAL:\s+role \"[^\"]*\" does not exist"),
    _row("postgres", "auth", r"(token|jwt).{0,40}(expired|invalid)"),
    _row("postgres", "permission", r"permission denied|insufficient[_ ]privilege|\b42501\b|must be owner of"),
    _row("duckdb", "permission", r"Permission Error"),
    _row("*", "auth", r"\b401\b.{0,40}unauthori[sz]ed|authentication (failed|error)|invalid[_ ]grant"),
    _row("*", "permission", r"\b403\b.{0,40}forbidden|access denied|insufficient privileges"),
)


def classify_message(message: str, adapter: str | None = None) -> FailureKind:
    for row in FAILURE_PATTERNS:
        if adapter is not None and row.adapter not in ("*", adapter):
            continue
        if row.pattern.search(message):
            return row.kind
    return "other"


def classify_failure(result: RunResult, adapter: str | None = None) -> FailureKind:
    """Classify why ``result`` failed from its failed nodes' messages (or its invocation message)."""
    messages = [node.message or "" for node in result.failed_nodes] or [result.message]
    kinds = {classify_message(message, adapter) for message in messages}
    precedence: tuple[FailureKind, ...] = ("permission", "auth")
    for kind in precedence:
        if kind in kinds:
            return kind
    return "other"
