"""What one dbt invocation did, read from dbt's own ``run_results.json``, and why a model failed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
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


# First match wins, so per adapter: transient look-alikes ("other") first, then auth ("permission denied"
# can appear inside a login failure), then permission. Each row quotes the warehouse's documented wording.
FAILURE_PATTERNS: tuple[FailurePattern, ...] = (
    # PostgreSQL: SQLSTATE class 28 (invalid authorization), 42501 insufficient_privilege.
    _row("postgres", "auth", r"password authentication failed|\b28P01\b|\b28000\b"),
    _row("postgres", "auth", r"pam authentication failed|no pg_hba\.conf entry|has an expired password"),
    _row("postgres", "auth", r"FATAL:\s+role \"[^\"]*\" does not exist"),
    _row("postgres", "auth", r"(token|jwt).{0,40}(expired|invalid)"),
    _row(
        "postgres",
        "permission",
        r"permission denied|insufficient[_ ]privilege|\b42501\b|must be owner of|must be member of role",
    ),
    # BigQuery: 403 is also quota and rate limits, which are transient, not a missing grant.
    _row("bigquery", "other", r"quota exceeded|rate ?limit|rateLimitExceeded|quotaExceeded"),
    _row("bigquery", "auth", r"\b401\b|invalid authentication credentials|invalid_grant|RefreshError|reauthenticat"),
    _row(
        "bigquery",
        "permission",
        r"access denied|accessDenied|\b403\b|permission [\w.]+ denied|does not have [\w.]+ permission",
    ),
    # Snowflake: 390xxx are session/auth errors; 003001 (42501) is "SQL access control error".
    _row("snowflake", "auth", r"\b3901(?:00|14|18)\b|\b3903(?:03|18)\b|token (has )?expired|invalid oauth"),
    _row("snowflake", "auth", r"incorrect username or password"),
    # "Object does not exist or not authorized" is left to "other": Snowflake says the same for a typo.
    _row("snowflake", "permission", r"insufficient privileges|SQL access control error|\b003001\b"),
    # Databricks: Unity Catalog error classes.
    _row("databricks", "auth", r"invalid access token|UNAUTHENTICATED|\b401\b|token (is )?expired"),
    _row("databricks", "permission", r"INSUFFICIENT_PERMISSIONS|PERMISSION_DENIED|user does not have \w+"),
    # SQL Server / Fabric / Synapse: 18456 login failed; 229/230/262/300 permission errors.
    _row("sqlserver|fabric|synapse", "auth", r"login failed|\(18456\)|\bAADSTS\d+|access token (has )?expired"),
    _row(
        "sqlserver|fabric|synapse",
        "permission",
        r"permission was denied|permission denied|\((?:229|230|262|300)\)",
    ),
    _row("duckdb", "permission", r"Permission Error"),
    _row("*", "auth", r"\b401\b.{0,40}unauthori[sz]ed|authentication (failed|error)|invalid[_ ]grant"),
    _row("*", "permission", r"\b403\b.{0,40}forbidden|access denied|insufficient privileges"),
)

# What the warehouse says is missing, per adapter: the text a user needs to ask for the right GRANT.
_MISSING_GRANT: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("postgres", re.compile(r"permission denied for (\w+) (\"[^\"]+\"|\S+)", re.IGNORECASE)),
    ("bigquery", re.compile(r"permission ([\w.]+) denied on (\w+ [^\s(]+)", re.IGNORECASE)),
    ("bigquery", re.compile(r"does not have ([\w.]+) permission", re.IGNORECASE)),
    ("snowflake", re.compile(r"insufficient privileges to operate on (\w+ '[^']+'|\w+)", re.IGNORECASE)),
    ("databricks", re.compile(r"user does not have (\w+(?: \w+)?) on (\w+ '[^']+')", re.IGNORECASE)),
    ("sqlserver|fabric|synapse", re.compile(r"the (\w+(?: \w+)?) permission was denied on the object '([^']+)'", re.I)),
)


def _applies(row_adapter: str, adapter: str | None) -> bool:
    return adapter is None or row_adapter == "*" or adapter in row_adapter.split("|")


def classify_message(message: str, adapter: str | None = None) -> FailureKind:
    for row in FAILURE_PATTERNS:
        if _applies(row.adapter, adapter) and row.pattern.search(message):
            return row.kind
    return "other"


def classify_messages(messages: Iterable[str], adapter: str | None = None) -> FailureKind:
    """The kind for a set of messages: a permission error anywhere wins over an auth error, then other."""
    kinds = {classify_message(message, adapter) for message in messages if message}
    precedence: tuple[FailureKind, ...] = ("permission", "auth")
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
    for row_adapter, pattern in _MISSING_GRANT:
        if _applies(row_adapter, adapter):
            found = pattern.search(message)
            if found:
                return " on ".join(found.groups()) if row_adapter != "postgres" else " ".join(found.groups())
    return None
