"""From a failed run (run results + dbt's log) to a typed error, and when one token refresh is allowed."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow_provider_idbt.dbt.failures import failure_for, may_refresh_and_rerun
from airflow_provider_idbt.dbt.json_log import DbtLogSummary, summarize
from airflow_provider_idbt.dbt.results import NodeResult, RunResult
from airflow_provider_idbt.errors import DbtRunFailed, PermissionMismatch, WarehouseAuthFailed
from airflow_provider_idbt.identity.token import IdentityContext
from tests.unit.dbt.test_json_log import CONNECT_FAILED, MODEL_DENIED, UID

IDENTITY = IdentityContext(
    "https://idp.test", "svc-intern", datetime(2030, 1, 1, tzinfo=UTC), "sha256:x", groups=("interns",)
)
DENIED = RunResult(
    1,
    "error",
    (NodeResult(UID, "error", "Database Error in model stg_payments\n  permission denied for table payments", 0.1),),
)
NO_CONNECTION = RunResult(
    2, "invocation_error", message="idbt worker: dbt could not run: FailedToConnectError: Database Error"
)


def test_warehouse_permission_error_is_a_mismatch_with_the_missing_grant() -> None:
    error = failure_for(UID, IDENTITY, DENIED, summarize(MODEL_DENIED, UID), "postgres")
    assert isinstance(error, PermissionMismatch) and not error.retryable
    assert error.required == ("table payments",) and error.held == ("group:interns",)
    assert "permission denied for table payments" in (error.warehouse_message or "")
    assert "svc-intern" in str(error) and UID in str(error)


def test_auth_failure_at_connect_may_refresh_once() -> None:
    log = summarize(CONNECT_FAILED, UID)
    assert may_refresh_and_rerun(NO_CONNECTION, log, "postgres")
    error = failure_for(UID, IDENTITY, NO_CONNECTION, log, "postgres", refreshed=True)
    assert isinstance(error, WarehouseAuthFailed) and error.retryable
    assert "after one token refresh" in str(error) and "password authentication failed" in str(error)


def test_no_refresh_after_a_model_statement_ran_or_without_a_log() -> None:
    ran = summarize([*MODEL_DENIED[:4], *CONNECT_FAILED[1:]], UID)
    assert ran.model_statements == 1
    assert not may_refresh_and_rerun(NO_CONNECTION, ran, "postgres")
    assert not may_refresh_and_rerun(NO_CONNECTION, DbtLogSummary(), "postgres")
    error = failure_for(UID, IDENTITY, NO_CONNECTION, ran, "postgres")
    assert isinstance(error, WarehouseAuthFailed) and "had run" in str(error)


def test_other_failures_stay_normal() -> None:
    result = RunResult(1, "error", (NodeResult(UID, "error", 'relation "x" does not exist', 0.1),))
    error = failure_for(UID, IDENTITY, result, summarize([], UID), "postgres")
    assert isinstance(error, DbtRunFailed) and error.retryable
    assert not may_refresh_and_rerun(result, summarize([], UID), "postgres")
