"""RunResult from run_results.json (dbt 1.11 shape) and failure classification per adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.dbt.results import (
    NodeResult,
    RunResult,
    classify_failure,
    classify_message,
    load_run_result,
)
from airflow_provider_idbt.warehouses import failure_rows_for

UID = "model.idbt_example.customer_orders"


def _node(status: str, message: str | None = "OK", **extra: Any) -> dict[str, Any]:
    # The fields dbt 1.11 writes for each node; only some are read.
    return {
        "status": status,
        "timing": [],
        "thread_id": "Thread-1 (worker)",
        "execution_time": 0.25,
        "adapter_response": {"_message": "OK", "rows_affected": 3} if status == "success" else {},
        "message": message,
        "failures": None,
        "unique_id": UID,
        "compiled": True,
        "compiled_code": "select 1",
        "relation_name": '"idbt_example"."main"."customer_orders"',
        "batch_results": None,
        **extra,
    }


def _write(tmp_path: Path, *nodes: dict[str, Any]) -> Path:
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps({"metadata": {}, "results": list(nodes), "elapsed_time": 1.5, "args": {}}))
    return path


def test_success(tmp_path: Path) -> None:
    result = load_run_result(0, _write(tmp_path, _node("success")), duration=3.2)
    assert result.status == "success"
    assert (result.returncode, result.duration, result.elapsed) == (0, 3.2, 1.5)
    node = result.for_model(UID)
    assert node == NodeResult(UID, "success", "OK", 0.25, {"_message": "OK", "rows_affected": 3}, None)
    assert node is not None and node.adapter_response["rows_affected"] == 3
    assert result.for_model("model.x.y") is None


def test_model_error(tmp_path: Path) -> None:
    message = "Database Error in model customer_orders\n  permission denied for schema analytics"
    result = load_run_result(1, _write(tmp_path, _node("error", message)))
    assert result.status == "error"
    assert result.failed_nodes[0].message == message


def test_skipped_and_empty_selection(tmp_path: Path) -> None:
    assert load_run_result(0, _write(tmp_path, _node("skipped", None))).status == "skipped"
    assert load_run_result(0, _write(tmp_path)).status == "skipped"


@pytest.mark.parametrize("returncode", [0, 2, -9])
def test_no_run_results_is_an_invocation_error(tmp_path: Path, returncode: int) -> None:
    result = load_run_result(returncode, tmp_path / "missing.json", message="profile not found")
    assert result.status == "invocation_error"
    assert result.message == "profile not found"


def test_unreadable_run_results(tmp_path: Path) -> None:
    path = tmp_path / "run_results.json"
    path.write_text("{")
    assert load_run_result(0, path).status == "invocation_error"


@pytest.mark.parametrize(
    ("message", "adapter", "kind"),
    [
        ("permission denied for table orders", "postgres", "permission"),
        ('ERROR: 42501: must be owner of table "orders"', "postgres", "permission"),
        ("insufficient_privilege", "postgres", "permission"),
        ('FATAL:  password authentication failed for user "svc"', "postgres", "auth"),
        ('FATAL:  role "ghost" does not exist', "postgres", "auth"),
        ('relation "orders" does not exist', "postgres", "other"),
        ("Permission Error: File system LocalFileSystem has been disabled", "duckdb", "permission"),
        ("permission denied for table orders", None, "permission"),
        ("HTTP 403 Forbidden: caller lacks bigquery.tables.create", "bigquery", "permission"),
    ],
)
def test_classify_message(message: str, adapter: str | None, kind: str) -> None:
    assert classify_message(message, adapter) == kind


def test_rows_of_another_adapter_do_not_apply() -> None:
    assert classify_message("permission denied for table orders", "duckdb") == "other"


def test_classify_failure_prefers_permission(tmp_path: Path) -> None:
    result = RunResult(
        1,
        "error",
        (
            NodeResult("a", "error", 'relation "x" does not exist', 0.1),
            NodeResult("b", "error", "permission denied for schema s", 0.1),
        ),
    )
    assert classify_failure(result, "postgres") == "permission"
    assert classify_failure(RunResult(2, "invocation_error", message="password authentication failed")) == "auth"
    assert classify_failure(RunResult(0, "success")) == "other"


def test_failure_table_has_rows_per_adapter() -> None:
    adapters = {row.adapter for row in failure_rows_for(None)}
    assert {"postgres", "duckdb", "*"} <= adapters
