"""Model runs: one row per try of one model task (who ran it, as which token and role, what it read and wrote, how
it ended), their filter and their CSV/JSON export. Pure: no Airflow import; `ui/run_store.py` feeds it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time
from typing import Any

from airflow_provider_idbt.commands.audit import fold_try_events

# Where a row's detail comes from: the try's `idbt_events` XCom, its task_instance(_history) row only (the events
# are in that try's task log), or its task log (read for one task instance's earlier tries).
FROM_EVENTS, FROM_HISTORY, FROM_LOG = "events", "history", "log"
HIGHLIGHTED = ("permission_mismatch", "auth_failure")


@dataclass(frozen=True)
class ModelRun:
    """One try of one model task, as the metadata database (and the try's events) record it; never a secret."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    model: str  # the node's unique id, or the task id when no event names it
    state: str | None  # Airflow's state of that try
    outcome: str  # success | error | permission_mismatch | auth_failure | task failed | unknown ...
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_s: float | None = None
    hostname: str | None = None
    issuer: str | None = None
    subject: str | None = None
    principal: str | None = None
    groups: tuple[str, ...] = ()
    token_fingerprint: str | None = None
    token_expires_at: str | None = None
    warehouse_role: str | None = None
    namespace: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    stage: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    warehouse_message: str | None = None
    required: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    source: str = FROM_HISTORY

    @property
    def highlight(self) -> str | None:
        """``permission_mismatch`` or ``auth_failure`` when the try ended in one (the view marks those rows)."""
        return self.outcome if self.outcome in HIGHLIGHTED else None

    @property
    def when(self) -> datetime | None:
        """The time a period filter and the order go by: the try's start, else its end."""
        return self.start_date or self.end_date


# The export's columns, in the order of the chain a review follows: identity → DAG run → task try → model →
# relations → status.
COLUMNS: tuple[str, ...] = (
    "issuer",
    "subject",
    "principal",
    "groups",
    "token_fingerprint",
    "token_expires_at",
    "warehouse_role",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "try_number",
    "hostname",
    "start_date",
    "end_date",
    "duration_s",
    "model",
    "namespace",
    "inputs",
    "outputs",
    "state",
    "outcome",
    "stage",
    "error_class",
    "error_message",
    "warehouse_message",
    "required",
    "held",
    "source",
)


@dataclass(frozen=True)
class TryRecord:
    """One try as Airflow's metadata database keeps it (task_instance or task_instance_history), plus its events
    when they are known (``events`` None: only the row)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None
    operator: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_s: float | None = None
    hostname: str | None = None
    events: tuple[Mapping[str, Any], ...] | None = None
    source: str = FROM_HISTORY


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _texts(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


def fold_try(record: TryRecord) -> ModelRun:
    """The row of one try: Airflow's fields from ``record``, the rest folded from its events (commands/audit.py's
    fold, shared with `idbt audit`). Without events the outcome is Airflow's state (``task failed``)."""
    unique_id, trail = fold_try_events(record.try_number, record.state, record.events or ())
    identity = trail.identity or {}
    outcome = trail.outcome
    if outcome == "unknown" and record.state:
        outcome = f"task {record.state}"
    return ModelRun(
        dag_id=record.dag_id,
        run_id=record.run_id,
        task_id=record.task_id,
        map_index=record.map_index,
        try_number=record.try_number,
        model=unique_id or record.task_id,
        state=record.state,
        outcome=outcome,
        start_date=_utc(record.start_date),
        end_date=_utc(record.end_date),
        duration_s=record.duration_s if record.duration_s is not None else trail.duration_s,
        hostname=record.hostname or None,
        issuer=identity.get("issuer"),
        subject=identity.get("subject"),
        principal=identity.get("principal"),
        groups=_texts(identity.get("groups")),
        token_fingerprint=identity.get("fingerprint"),
        token_expires_at=identity.get("expires_at"),
        warehouse_role=trail.warehouse_role,
        namespace=trail.namespace,
        inputs=_texts(trail.inputs),
        outputs=_texts(trail.outputs),
        stage=trail.stage,
        error_class=trail.error_class,
        error_message=trail.error_message,
        warehouse_message=trail.warehouse_message,
        required=_texts(trail.required),
        held=_texts(trail.held),
        source=record.source if record.events is not None else FROM_HISTORY,
    )


def fold_task_instance(
    records: Iterable[TryRecord], *, sibling_events: Iterable[Mapping[str, Any]] | None = None
) -> list[ModelRun]:
    """Every try of one task instance, oldest first. A try known only from its row names the model and relations
    that its siblings' events name (``sibling_events``: another try's, when that try is not among ``records``):
    the task's node. Each try keeps its own identity, which only its own events tell."""
    rows = [fold_try(r) for r in sorted(records, key=lambda r: r.try_number)]
    named = next((r for r in reversed(rows) if r.source != FROM_HISTORY and r.model != r.task_id), None)
    if named is None and sibling_events is not None and rows:
        named = fold_try(replace(_blank(rows[0]), events=tuple(sibling_events), source=FROM_EVENTS))
    if named is None or named.model == named.task_id:
        return rows
    return [
        replace(r, model=named.model, namespace=named.namespace, inputs=named.inputs, outputs=named.outputs)
        if r.source == FROM_HISTORY
        else r
        for r in rows
    ]


def _blank(run: ModelRun) -> TryRecord:
    return TryRecord(run.dag_id, run.run_id, run.task_id, run.map_index, 0, None)


@dataclass(frozen=True)
class RunFilter:
    """Which rows a page or an export shows. None means any; ``since`` is inclusive, ``until`` exclusive, both on
    the try's start (its end when it never started)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    status: str | None = None  # Airflow's state or the outcome, e.g. failed, permission_mismatch
    identity: str | None = None  # part of the subject, principal, issuer or a group, any case
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError(
                f"until ({self.until.isoformat()}) must be after since ({self.since.isoformat()}); "
                "the period includes since and ends before until"
            )


def parse_time(text: str, *, name: str = "time") -> datetime:
    """An ISO 8601 date or date-time; a date means its midnight, no offset means UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"{name} {text!r} is not an ISO 8601 date or date-time; write e.g. 2026-11-23 or 2026-11-23T18:00:00Z"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_filter(params: Mapping[str, str | None]) -> RunFilter:
    """A :class:`RunFilter` from text (query parameters, command-line options); empty values mean any.

    Raises ValueError naming the parameter that is wrong and what it takes.
    """
    known = {f.name for f in fields(RunFilter)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown filter {', '.join(unknown)}; filters are {', '.join(sorted(known))}")
    given = {k: v.strip() for k, v in params.items() if v is not None and v.strip()}
    values: dict[str, Any] = {k: v for k, v in given.items() if k not in ("map_index", "since", "until")}
    if "map_index" in given:
        try:
            values["map_index"] = int(given["map_index"])
        except ValueError:
            raise ValueError(
                f"map_index {given['map_index']!r} is not an integer (-1 for a task that is not mapped)"
            ) from None
    for name in ("since", "until"):
        if name in given:
            values[name] = parse_time(given[name], name=name)
    return RunFilter(**values)


def _identity_matches(run: ModelRun, needle: str) -> bool:
    wanted = needle.casefold()
    return any(wanted in value.casefold() for value in (run.subject, run.principal, run.issuer, *run.groups) if value)


def matches(run: ModelRun, filter: RunFilter) -> bool:
    """True when ``run`` is one of the rows ``filter`` asks for."""
    for name in ("dag_id", "run_id", "task_id", "map_index"):
        wanted = getattr(filter, name)
        if wanted is not None and getattr(run, name) != wanted:
            return False
    if filter.status is not None:
        status = filter.status.casefold()
        if status not in {(run.state or "").casefold(), run.outcome.casefold()}:
            return False
    if filter.identity is not None and not _identity_matches(run, filter.identity):
        return False
    if filter.since is not None or filter.until is not None:
        when = run.when
        if when is None:
            return False
        if filter.since is not None and when < filter.since:
            return False
        if filter.until is not None and when >= filter.until:
            return False
    return True


def order_key(run: ModelRun) -> tuple[Any, ...]:
    """Newest try first; ties (and tries that never started, last) by DAG, run, task, map index, try."""
    when = run.when
    stamp = -when.timestamp() if when is not None else float("inf")
    return (stamp, run.dag_id, run.run_id, run.task_id, run.map_index, -run.try_number)


def ordered(runs: Iterable[ModelRun]) -> list[ModelRun]:
    """The one order every page and export uses (see :func:`order_key`)."""
    return sorted(runs, key=order_key)


# -- export ------------------------------------------------------------------------------------------------------

# A spreadsheet runs a cell starting with one of these as a formula (=cmd|' /C calc'!A0); a claim is text a
# token's issuer (or whoever controls it) chose, so every such text cell is prefixed with an apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = ";"


def _value(run: ModelRun, column: str) -> Any:
    value = getattr(run, column)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    if isinstance(value, tuple):
        return list(value)
    return value


def as_record(run: ModelRun) -> dict[str, Any]:
    """The row as JSON-ready values, keyed and ordered by :data:`COLUMNS`."""
    return {column: _value(run, column) for column in COLUMNS}


def _safe_cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return _safe_cell(LIST_SEPARATOR.join(str(v) for v in value))
    if isinstance(value, bool | int | float):
        return str(value)
    return _safe_cell(str(value))


def to_csv(rows: Sequence[ModelRun]) -> str:
    """RFC 4180 CSV: a header of :data:`COLUMNS`, one line per row in the order given; lists joined with ``;``;
    text that a spreadsheet would run as a formula starts with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for run in rows:
        record = as_record(run)
        writer.writerow([_cell(record[column]) for column in COLUMNS])
    return out.getvalue()


def to_json(rows: Sequence[ModelRun]) -> str:
    """A JSON array of the rows in the order given, each an object keyed by :data:`COLUMNS` (lists stay lists)."""
    return json.dumps([as_record(run) for run in rows], indent=2, ensure_ascii=False) + "\n"
