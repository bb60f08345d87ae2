"""`idbt audit`: fold a try's `idbt.event/1` events into its trail (the one fold the "Model runs" view shares), one
trail per model of a DAG run, and say whether it is complete."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The provider's operators as Airflow records them (task_instance.operator); a task of any other operator counts as
# a model task when it left idbt events (a DAG's own subclass).
PROVIDER_OPERATORS = frozenset({"DbtIdentityOperator", "DbtIdentityTestOperator", "DbtIdentityHooksOperator"})
# Where a try's events were read from: its task log, its `idbt_events` XCom (the log is missing), or nowhere.
FROM_LOG, FROM_XCOM, FROM_NOWHERE = "log", "xcom", "none"


@dataclass(frozen=True)
class TaskAttempt:
    """One try of one task instance, with the events its log carries (what the log reader returns)."""

    task_id: str
    map_index: int
    try_number: int
    state: str | None
    operator: str | None
    events: Sequence[Mapping[str, Any]]
    events_from: str = FROM_LOG
    # With ``events_from == FROM_NOWHERE``: why the try left no task log, as far as the reader can tell.
    no_log_reason: str | None = None


@dataclass
class TryTrail:
    """What one try of a model task did, as its events tell it."""

    try_number: int
    state: str | None
    identity: dict[str, Any] | None = None
    namespace: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    outcome: str = "unknown"
    started: bool = False
    ended: bool = False
    duration_s: float | None = None
    error_class: str | None = None
    error_message: str | None = None
    stage: str | None = None
    warehouse_message: str | None = None
    required: list[str] | None = None
    held: list[str] | None = None
    connection: str | None = None
    warehouse_role: str | None = None
    events_from: str = FROM_LOG
    no_log_reason: str | None = None


@dataclass
class ModelTrail:
    """Every try of one model task of the run; complete when every try that started the model logged its end
    and the last try ended with an identity-tagged event."""

    unique_id: str
    task_id: str
    map_index: int
    tries: list[TryTrail]
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass
class RunAudit:
    dag_id: str
    run_id: str
    models: list[ModelTrail]

    @property
    def complete(self) -> bool:
        return all(model.complete for model in self.models)

    def as_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "complete": self.complete,
            "models": [{**asdict(m), "complete": m.complete} for m in self.models],
        }


def fold_try_events(
    try_number: int, state: str | None, events: Iterable[Mapping[str, Any]]
) -> tuple[str | None, TryTrail]:
    """What one try did, from its events oldest first: the model's unique id (None when no event names it) and
    its :class:`TryTrail`. Pure; `idbt audit` and the "Model runs" view both read a try through it."""
    trail = TryTrail(try_number=try_number, state=state)
    unique_id: str | None = None
    auth_stage: str | None = None
    for event in events:
        model = event.get("model") or {}
        unique_id = model.get("unique_id") or unique_id
        trail.namespace = model.get("namespace") or trail.namespace
        trail.inputs = list(model.get("inputs") or trail.inputs)
        trail.outputs = list(model.get("outputs") or trail.outputs)
        if event.get("identity"):
            trail.identity = dict(event["identity"])
        kind, phase = event.get("kind"), event.get("phase")
        if kind == "model_run" and phase == "start":
            trail.started = True
            trail.warehouse_role = event.get("warehouse_role") or trail.warehouse_role
        elif kind == "model_run" and phase == "end":
            trail.ended = bool(event.get("identity"))
            status = str(event.get("status") or "unknown")
            # A refusal stays the try's outcome; so does an auth failure the try did not recover from.
            if trail.outcome != "permission_mismatch" and (trail.outcome != "auth_failure" or status == "success"):
                trail.outcome = status
            trail.duration_s = event.get("duration_s")
        elif kind == "permission_mismatch":
            # Conclusive on its own: a pre-flight refusal ends the try before dbt (and model_run) starts. A job
            # refused its connection ends it before any token, so there is no identity to tag: the refused
            # connection is the trail.
            job_refusal = event.get("stage") == "job"
            trail.ended = trail.ended or bool(event.get("identity")) or job_refusal
            if job_refusal:
                trail.connection = event.get("connection")
            trail.outcome = "permission_mismatch"
            trail.stage = event.get("stage")
            trail.warehouse_message = event.get("warehouse_message")
            trail.required, trail.held = event.get("required"), event.get("held")
        elif kind == "auth_failure":
            trail.outcome = "auth_failure"
            trail.connection = event.get("connection")
            auth_stage = event.get("stage") or auth_stage
        elif kind == "task_lifecycle" and phase in ("success", "failed") and trail.outcome == "unknown":
            trail.outcome = f"task {phase}"
        if event.get("error_message") and (kind != "task_lifecycle" or trail.error_message is None):
            trail.error_class, trail.error_message = event.get("error_class"), event.get("error_message")
    if trail.outcome == "auth_failure" and trail.stage is None:
        trail.stage = auth_stage  # where the try's last refusal came from (the warehouse, the exchange)
    return unique_id, trail


def _fold_try(attempt: TaskAttempt) -> tuple[str | None, TryTrail]:
    unique_id, trail = fold_try_events(attempt.try_number, attempt.state, attempt.events)
    trail.events_from, trail.no_log_reason = attempt.events_from, attempt.no_log_reason
    return unique_id, trail


def _no_log(trail: TryTrail) -> str:
    return f"try {trail.try_number} left no task log" + (f": {trail.no_log_reason}" if trail.no_log_reason else "")


def _missing(tries: Sequence[TryTrail]) -> list[str]:
    problems = [f"try {t.try_number} started the model but logged no end" for t in tries if t.started and not t.ended]
    problems += [_no_log(t) for t in tries[:-1] if t.events_from == FROM_NOWHERE]
    last = tries[-1] if tries else None
    if last is not None and last.events_from == FROM_NOWHERE:
        problems.append(_no_log(last))  # not "no end event": there was nothing to read the events from
    elif last is None or not last.ended:
        where = f" in try {last.try_number}" if last else ""
        problems.append(f"no identity-tagged end event (model_run end or permission_mismatch){where}")
    return problems


def build_audit(dag_id: str, run_id: str, attempts: Iterable[TaskAttempt]) -> RunAudit:
    """One :class:`ModelTrail` per model task of the run (a provider operator, or a task with events)."""
    grouped: dict[tuple[str, int], list[TaskAttempt]] = {}
    for attempt in attempts:
        if attempt.events or (attempt.operator or "") in PROVIDER_OPERATORS:
            grouped.setdefault((attempt.task_id, attempt.map_index), []).append(attempt)
    models = []
    for (task_id, map_index), group in sorted(grouped.items()):
        tries, unique_id = [], None
        for attempt in sorted(group, key=lambda a: a.try_number):
            uid, trail = _fold_try(attempt)
            unique_id = uid or unique_id
            tries.append(trail)
        models.append(ModelTrail(unique_id or task_id, task_id, map_index, tries, _missing(tries)))
    return RunAudit(dag_id, run_id, models)


def _who(identity: Mapping[str, Any] | None) -> str:
    if not identity:
        return "(no identity)"
    groups = ",".join(identity.get("groups") or ()) or "-"
    return (
        f"{identity.get('subject')} (issuer {identity.get('issuer')}, groups {groups}, "
        f"token {identity.get('fingerprint')})"
    )


def _indented(first: str, text: str) -> str:
    """A multi-line message (dbt's errors are) kept inside its block."""
    return first + text.replace("\n", "\n" + " " * 8)


def render_text(audit: RunAudit) -> str:
    """Per model: identity → task and try → model → inputs and outputs → outcome."""
    lines = [f"DAG {audit.dag_id} run {audit.run_id}: {len(audit.models)} model task(s)"]
    for model in audit.models:
        mapped = f"[{model.map_index}]" if model.map_index >= 0 else ""
        lines.append("")
        lines.append(f"{model.unique_id}  ({'complete' if model.complete else 'INCOMPLETE'})")
        for t in model.tries:
            lines.append(f"  {_who(t.identity)} → {model.task_id}{mapped} try {t.try_number} → {model.unique_id}")
            where = t.namespace or "(namespace unknown)"
            lines.append(f"      reads  {where}: {', '.join(t.inputs) or '-'}")
            lines.append(f"      writes {where}: {', '.join(t.outputs) or '-'}")
            took = f" in {t.duration_s:g} s" if t.duration_s is not None else ""
            stage = f" ({t.stage})" if t.stage else ""
            lines.append(f"      outcome {t.outcome}{stage}{took}")
            if t.warehouse_role:
                lines.append(f"      as warehouse role {t.warehouse_role}")
            if t.events_from == FROM_XCOM:
                lines.append("      (events read from the try's idbt_events XCom: it left no task log)")
            if t.warehouse_message:
                lines.append(_indented("      warehouse said: ", t.warehouse_message))
            if t.required:
                lines.append(f"      required {', '.join(t.required)}; held {', '.join(t.held or ()) or '-'}")
            if t.error_message and not t.warehouse_message:
                label = f"error {t.error_class}: " if t.error_class else "error: "
                lines.append(_indented(f"      {label}", t.error_message))
        for problem in model.missing:
            lines.append(f"  trail incomplete: {problem}")
    verdict = "complete" if audit.complete else "INCOMPLETE"
    lines += ["", f"identity trail {verdict}: {sum(m.complete for m in audit.models)}/{len(audit.models)} models"]
    return "\n".join(lines)


def render_json(audit: RunAudit) -> str:
    return json.dumps(audit.as_json(), indent=2, sort_keys=True, default=str)
