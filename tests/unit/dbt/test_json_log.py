"""dbt's JSON log file: statements sent per model, errors, from lines shaped like dbt 1.11 writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.json_log import read_dbt_log, summarize

UID = "model.idbt_pg.stg_payments"


def _line(event: str, level: str = "debug", node: str | None = None, **data: Any) -> str:
    if node:
        data["node_info"] = {"unique_id": node, "node_status": "started"}
    return json.dumps({"data": data, "info": {"name": event, "level": level, "msg": data.get("msg", ""), "code": "E0"}})


CONNECT_FAILED = [
    _line("SQLQuery", conn_name="list_db", sql="/* {} */\nselect distinct nspname from pg_namespace"),
    _line(
        "AdapterEventDebug",
        base_msg="Got a retryable error when attempting to open a postgres connection.\n"
        'Error:\nFATAL:  password authentication failed for user "svc"',
        name="Postgres",
    ),
    _line("AdapterEventDebug", base_msg="Error running SQL: {}", args=["select 1"], name="Postgres"),
    _line(
        "MainEncounteredError", "error", exc='Database Error\n  FATAL:  password authentication failed for user "svc"'
    ),
]

MODEL_DENIED = [
    _line("SQLQuery", conn_name="master", sql="/* {} */\nselect 1 from pg_tables"),
    _line("SQLQuery", node=UID, conn_name=UID, sql="BEGIN"),
    _line("SQLQueryStatus", node=UID, status="BEGIN", elapsed=0.1),
    _line(
        "SQLQuery", node=UID, conn_name=UID, sql='/* {"app":"idbt"} */\ncreate table x as select * from raw.payments'
    ),
    _line("AdapterEventDebug", node=UID, base_msg="Postgres error: permission denied for table payments\n"),
    _line(
        "RunResultError",
        "error",
        node=UID,
        msg="Database Error in model stg_payments\n  permission denied for table payments",
    ),
]


def test_connection_failure_before_any_model_statement() -> None:
    summary = summarize(CONNECT_FAILED, UID)
    assert summary.found and summary.model_statements == 0 and summary.statements == 1
    assert any("password authentication failed" in m for m in summary.errors)
    assert not any(m.startswith("Error running SQL") for m in summary.adapter_errors)


def test_model_statement_counted_but_not_transaction_control() -> None:
    summary = summarize(["not json", *MODEL_DENIED], UID)
    assert summary.model_statements == 1
    assert summary.messages[0].startswith("Database Error in model stg_payments")
    assert "Postgres error: permission denied for table payments" in summary.adapter_errors


def test_missing_log_is_not_found(tmp_path: Path) -> None:
    assert not read_dbt_log(tmp_path, UID).found
    (tmp_path / "dbt.log").write_text("\n".join(MODEL_DENIED))
    assert read_dbt_log(tmp_path, UID).model_statements == 1
