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


def _invocation_error(message: str) -> RunResult:
    return RunResult(2, "invocation_error", message=message)


def test_a_missing_adapter_is_a_configuration_error_naming_the_extra() -> None:
    from airflow_provider_idbt.errors import ConfigurationError

    error = failure_for(
        UID,
        IDENTITY,
        _invocation_error("Could not find adapter type snowflake!"),
        summarize([], UID),
        "snowflake",
        python="/opt/dbt/bin/python",
    )
    assert isinstance(error, ConfigurationError) and not error.retryable
    assert "`snowflake` is not installed in the Python that runs dbt (/opt/dbt/bin/python)" in str(error)
    assert "dbt_python=" in str(error)


def test_a_missing_profile_or_target_is_a_configuration_error() -> None:
    from airflow_provider_idbt.errors import ConfigurationError

    no_target = _invocation_error("The profile 'analytics' does not have a target named 'prod'. The valid ...")
    error = failure_for(UID, IDENTITY, no_target, summarize([], UID), "postgres")
    assert isinstance(error, ConfigurationError) and "profile `analytics` has no target `prod`" in str(error)
    no_profile = _invocation_error("Runtime Error\n  Could not find profile named 'analytcs'")
    error = failure_for(UID, IDENTITY, no_profile, summarize([], UID), "postgres")
    assert isinstance(error, ConfigurationError) and "no profile `analytcs`" in str(error)


def test_an_unreachable_warehouse_is_retryable_and_says_what_to_check() -> None:
    from airflow_provider_idbt.errors import WarehouseUnreachable

    refused = _invocation_error(
        'connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running?'
    )
    error = failure_for(UID, IDENTITY, refused, summarize([], UID), "postgres")
    assert isinstance(error, WarehouseUnreachable) and error.retryable
    assert "could not be reached for model" in str(error) and "check host, port" in str(error)


def test_failing_tests_of_a_node_are_named() -> None:
    result = RunResult(
        1,
        "error",
        (
            NodeResult(UID, "success", "OK", 0.1),
            NodeResult("test.p.unique_x.1", "fail", "Got 2 results, configured to fail if != 0", 0.1, {}, 2),
        ),
    )
    error = failure_for(UID, IDENTITY, result, summarize([], UID), "postgres")
    assert isinstance(error, DbtRunFailed)
    assert str(error).startswith(f"tests of `{UID}` failed: test.p.unique_x.1 (2 failing rows): Got 2 results")
