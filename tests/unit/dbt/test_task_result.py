"""The task's one XCom result object: the node's own line, its tests, the identity; nothing secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from airflow_provider_idbt.dbt.manifest import Checksum, ModelSpec
from airflow_provider_idbt.dbt.results import NodeResult, RunResult
from airflow_provider_idbt.dbt.task_result import task_result
from airflow_provider_idbt.identity.token import IdentityContext

SPEC = ModelSpec(
    unique_id="model.p.orders",
    name="orders",
    package_name="p",
    resource_type="model",
    original_file_path="models/orders.sql",
    checksum=Checksum("sha256", "x"),
    depends_on=(),
    inputs=("db.raw.orders",),
    output="db.analytics.orders",
    materialized="table",
)
IDENTITY = IdentityContext("https://idp.test", "svc-a", datetime(2030, 1, 1, tzinfo=UTC), "sha256:abc")


def test_build_result_has_the_model_line_and_its_tests() -> None:
    response = {"_message": "SELECT 3", "code": "SELECT", "rows_affected": 3, "nested": {"x": 1}, "long": "y" * 900}
    result = RunResult(
        0,
        "success",
        (
            NodeResult("model.p.orders", "success", "SELECT 3", 0.4321, response),
            NodeResult("test.p.unique_orders_id.1", "pass", None, 0.1, {}, 0),
        ),
        duration=2.0,
        elapsed=1.23456,
    )
    out = task_result("build", SPEC, result, IDENTITY, warehouse_role="transformer", duration=2.5)
    assert out["command"] == "build" and out["status"] == "success" and out["node_status"] == "success"
    assert out["rows_affected"] == 3 and out["relation"] == "db.analytics.orders"
    assert out["adapter_response"]["code"] == "SELECT" and "nested" not in out["adapter_response"]
    assert len(out["adapter_response"]["long"]) == 500
    assert out["execution_time_s"] == 0.432 and out["dbt_elapsed_s"] == 1.235 and out["duration_s"] == 2.5
    assert out["tests"] == [
        {"unique_id": "test.p.unique_orders_id.1", "status": "pass", "execution_time_s": 0.1, "failures": 0}
    ]
    assert out["subject"] == "svc-a" and out["token_fingerprint"] == "sha256:abc"
    assert out["token_expires_at"] == "2030-01-01T00:00:00+00:00" and out["warehouse_role"] == "transformer"
    json.dumps(out)  # XCom stores JSON


def test_test_command_has_no_line_of_its_own() -> None:
    result = RunResult(0, "success", (NodeResult("test.p.not_null_orders_id.2", "pass", None, 0.2),))
    out = task_result("test", SPEC, result, IDENTITY, warehouse_role=None, duration=1.0)
    assert out["node_status"] is None and out["rows_affected"] is None and out["adapter_response"] == {}
    assert [t["unique_id"] for t in out["tests"]] == ["test.p.not_null_orders_id.2"]


def test_a_task_of_one_test_lists_that_test_among_its_tests() -> None:
    import dataclasses

    spec = dataclasses.replace(SPEC, unique_id="test.p.orders_match_payments", resource_type="test", output=None)
    result = RunResult(1, "error", (NodeResult("test.p.orders_match_payments", "fail", "Got 2 results", 0.3, {}, 2),))
    out = task_result("test", spec, result, IDENTITY, warehouse_role=None, duration=1.0)
    assert out["node_status"] == "fail"
    assert out["tests"] == [
        {"unique_id": "test.p.orders_match_payments", "status": "fail", "execution_time_s": 0.3, "failures": 2}
    ]
