"""What dbt's structured (JSON) log file says a run did: statements sent per node, and the errors it logged."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_FILE = "dbt.log"
# Transaction control changes nothing: a model that only got as far as BEGIN has not run a statement.
_NO_EFFECT = frozenset({"BEGIN", "COMMIT", "ROLLBACK"})
_ERROR_EVENTS = frozenset(
    {"MainEncounteredError", "RunResultError", "CatchableExceptionOnRun", "GenericExceptionOnRun", "AdapterEventError"}
)
_MAX_ERRORS = 20


@dataclass(frozen=True)
class DbtLogSummary:
    """The parts of one invocation's ``dbt.log`` that classify a failure.

    ``model_statements`` counts statements of the model (not transaction control) that dbt sent to the
    warehouse, whether they finished or not: dbt logs ``SQLQuery`` before it executes, so this errs on the
    side of "something ran". Connection set-up (``set role``) is not a statement of the model.
    """

    found: bool = False
    model_statements: int = 0
    statements: int = 0
    errors: tuple[str, ...] = ()
    adapter_errors: tuple[str, ...] = ()

    @property
    def messages(self) -> tuple[str, ...]:
        return (*self.errors, *self.adapter_errors)


def _node_id(data: dict[str, Any]) -> str | None:
    node = data.get("node_info")
    return str(node.get("unique_id")) if isinstance(node, dict) and node.get("unique_id") else None


def _first_word(sql: str) -> str:
    # Skip the query comment dbt puts in front, then look at the statement's first keyword.
    text = sql.strip()
    while text.startswith("/*") and "*/" in text:
        text = text[text.index("*/") + 2 :].strip()
    return text.split(None, 1)[0].upper().rstrip(";") if text else ""


def _is_adapter_error(text: str) -> bool:
    # "Error running SQL: {}" only repeats the statement; the error itself is logged on its own line.
    return "error" in text.lower() and not text.startswith("Error running SQL")


def summarize(lines: Iterable[str], unique_id: str | None) -> DbtLogSummary:
    """Summarize dbt JSON log lines for the model ``unique_id``; lines that are not JSON are ignored."""
    model_statements = statements = 0
    errors: list[str] = []
    adapter_errors: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
            info, data = record["info"], record.get("data") or {}
            name = str(info["name"])
        except (ValueError, KeyError, TypeError):
            continue
        if name == "SQLQuery":
            if _first_word(str(data.get("sql") or "")) in _NO_EFFECT:
                continue
            statements += 1
            if unique_id is not None and _node_id(data) == unique_id:
                model_statements += 1
        elif name in _ERROR_EVENTS or info.get("level") == "error":
            text = str(data.get("exc") or data.get("msg") or info.get("msg") or "").strip()
            if text and text not in errors and len(errors) < _MAX_ERRORS:
                errors.append(text)
        elif name == "AdapterEventDebug" and _is_adapter_error(str(data.get("base_msg") or "")):
            # The adapter's own words ("Postgres error: permission denied for table x", connection failures).
            text = str(data.get("base_msg") or "").strip()
            if text not in adapter_errors and len(adapter_errors) < _MAX_ERRORS:
                adapter_errors.append(text)
    return DbtLogSummary(True, model_statements, statements, tuple(errors), tuple(adapter_errors))


def read_dbt_log(log_path: str | Path, unique_id: str | None) -> DbtLogSummary:
    """Summarize ``<log_path>/dbt.log`` (written with ``--log-format-file json``); empty when it is missing."""
    file = Path(log_path) / LOG_FILE
    try:
        with file.open(encoding="utf-8", errors="replace") as handle:
            return summarize(handle, unique_id)
    except OSError:
        return DbtLogSummary()
