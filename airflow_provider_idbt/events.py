"""The `idbt.event/1` stream: one JSON object per task-log line, built and written only here."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_idbt.identity.token import IdentityContext

SCHEMA = "idbt.event/1"
KINDS = frozenset({"model_run", "token_issued", "permission_mismatch", "auth_failure", "task_lifecycle"})
# Tries whose events this process remembers; a task process runs one try, a test process a few.
_JOURNAL_TRIES = 64


@dataclass(frozen=True)
class RunKeys:
    """Where an event happened in Airflow's terms."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1

    @classmethod
    def from_task_instance(cls, ti: Any) -> RunKeys:
        """Read the keys from anything shaped like an Airflow task instance (duck-typed: no Airflow import)."""
        map_index = getattr(ti, "map_index", None)
        return cls(
            dag_id=str(ti.dag_id),
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            try_number=int(ti.try_number),
            map_index=-1 if map_index is None else int(map_index),
        )


def build_event(
    kind: str,
    keys: RunKeys,
    *,
    identity: IdentityContext | None = None,
    model: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Assemble one event. ``model`` is {unique_id, inputs, outputs}; extra fields are kind-specific."""
    if kind not in KINDS:
        raise ValueError(f"unknown idbt event kind {kind!r}; known: {sorted(KINDS)}")
    event: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        **asdict(keys),
    }
    if model is not None:
        event["model"] = dict(model)
    if identity is not None:
        event["identity"] = identity.as_event()
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def format_event(event: Mapping[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)


def emit(logger: logging.Logger | Any, event: Mapping[str, Any]) -> None:
    """Write one event as one log line, and remember it for this try (see :func:`recorded`)."""
    logger.info("%s", format_event(event))
    _remember(event)


def _journal_key(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(fields.get(name) for name in ("dag_id", "run_id", "task_id", "map_index", "try_number"))


_journal: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()
_journal_lock = threading.Lock()


def _remember(event: Mapping[str, Any]) -> None:
    key = _journal_key(event)
    with _journal_lock:
        _journal.setdefault(key, []).append(dict(event))
        _journal.move_to_end(key)
        while len(_journal) > _JOURNAL_TRIES:
            _journal.popitem(last=False)


def recorded(keys: RunKeys) -> list[dict[str, Any]]:
    """The events this process emitted for one try, oldest first.

    Lets the OpenLineage methods, which Airflow calls in the task process after ``execute``, report the
    very identity the task log names, without the operator holding on to its token.
    """
    with _journal_lock:
        return [dict(e) for e in _journal.get(_journal_key(asdict(keys)), [])]


def parse_event(line: str) -> dict[str, Any] | None:
    """Return the event carried by a log line (plain or Airflow's structured JSON), or None."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("schema") == SCHEMA:
        return obj
    # Airflow 3 task logs are JSON lines whose `event` field holds the message.
    inner = obj.get("event") if isinstance(obj, dict) else None
    if isinstance(inner, str):
        return parse_event(inner)
    return None
