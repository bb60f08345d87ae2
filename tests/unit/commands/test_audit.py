"""`idbt audit`'s fold of task-log events into per-model trails, the completeness verdict and its renderings."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_idbt import events
from airflow_provider_idbt.commands.audit import TaskAttempt, build_audit, render_json, render_text
from tests.unit.identity.test_token import SECRET, make_token

MODEL = {
    "unique_id": "model.p.m",
    "namespace": "duckdb:///wh.duckdb",
    "inputs": ["wh.main.a"],
    "outputs": ["wh.main.m"],
}


def _attempt(
    task_id: str, try_number: int, *built: dict[str, Any], operator: str = "DbtIdentityOperator"
) -> TaskAttempt:
    return TaskAttempt(task_id, -1, try_number, "failed", operator, [json.loads(events.format_event(e)) for e in built])


def _run(task_id: str, try_number: int, status: str, **extra: Any) -> list[dict[str, Any]]:
    keys = events.RunKeys("d", "r", task_id, try_number)
    identity = make_token().identity
    return [
        events.build_event("model_run", keys, identity=identity, model=MODEL, phase="start"),
        *([events.build_event("permission_mismatch", keys, identity=identity, model=MODEL, **extra)] if extra else []),
        events.build_event(
            "model_run", keys, identity=identity, model=MODEL, phase="end", status=status, duration_s=1.0
        ),
    ]


def test_complete_run_with_retry_and_mismatch() -> None:
    attempts = [
        _attempt("m", 1, *_run("m", 1, "error")),
        _attempt("m", 2, *_run("m", 2, "success")),
        _attempt("denied", 1, *_run("denied", 1, "error", warehouse_message="permission denied for table t")),
        _attempt("python_task", 1, operator="_PythonDecoratedOperator"),
    ]
    audit = build_audit("d", "r", attempts)
    assert audit.complete and [m.task_id for m in audit.models] == ["denied", "m"]
    model = next(m for m in audit.models if m.task_id == "m")
    assert [t.outcome for t in model.tries] == ["error", "success"]
    assert model.tries[1].namespace == "duckdb:///wh.duckdb" and model.tries[1].inputs == ["wh.main.a"]
    denied = next(m for m in audit.models if m.task_id == "denied")
    assert denied.tries[0].warehouse_message == "permission denied for table t"
    text = render_text(audit)
    assert "svc-dbt (issuer https://idp.example.test, groups analytics" in text
    assert "→ m try 2 → model.p.m" in text and "warehouse said: permission denied" in text
    assert json.loads(render_json(audit))["complete"] is True
    assert SECRET not in text + render_json(audit)


def test_a_model_without_identity_tagged_end_makes_the_trail_incomplete() -> None:
    keys = events.RunKeys("d", "r", "m", 1)
    failed_auth = events.build_event(
        "auth_failure", keys, model=MODEL, connection="c", error_class="IdentityProviderUnavailable", error_message="x"
    )
    started_only = _run("n", 1, "success")[:1]
    audit = build_audit("d", "r", [_attempt("m", 1, failed_auth), _attempt("n", 1, *started_only)])
    assert not audit.complete
    by_task = {m.task_id: m for m in audit.models}
    assert by_task["m"].tries[0].outcome == "auth_failure" and by_task["m"].tries[0].connection == "c"
    assert by_task["n"].missing[0] == "try 1 started the model but logged no end"
    assert "INCOMPLETE" in render_text(audit)


def test_a_provider_task_with_no_events_at_all_is_incomplete() -> None:
    audit = build_audit("d", "r", [_attempt("silent", 1)])
    (model,) = audit.models
    assert model.unique_id == "silent" and not model.complete


def test_a_preflight_refusal_is_a_complete_trail() -> None:
    keys = events.RunKeys("d", "r", "m", 1)
    refused = events.build_event(
        "permission_mismatch",
        keys,
        identity=make_token().identity,
        model=MODEL,
        stage="preflight",
        required=["group:payroll"],
        held=["analytics"],
    )
    audit = build_audit("d", "r", [_attempt("m", 1, refused)])
    assert audit.complete
    (trail,) = audit.models[0].tries
    assert (trail.outcome, trail.stage, trail.required) == ("permission_mismatch", "preflight", ["group:payroll"])
    assert "required group:payroll; held analytics" in render_text(audit)


def test_a_job_refused_its_connection_is_a_complete_trail_without_identity() -> None:
    """No token was minted, so no identity: the refusal itself, naming the connection, ends the try."""
    keys = events.RunKeys("intruder", "r", "m", 1)
    refused = events.build_event(
        "permission_mismatch", keys, model=MODEL, stage="job", connection="idbt_prod", error_message="not allowed"
    )
    audit = build_audit("intruder", "r", [_attempt("m", 1, refused)])
    assert audit.complete, audit.models[0].missing
    (trail,) = audit.models[0].tries
    assert (trail.outcome, trail.stage, trail.connection, trail.identity) == (
        "permission_mismatch",
        "job",
        "idbt_prod",
        None,
    )
    assert "(job)" in render_text(audit)


def test_a_mismatch_of_another_stage_without_identity_stays_incomplete() -> None:
    keys = events.RunKeys("d", "r", "m", 1)
    refused = events.build_event("permission_mismatch", keys, model=MODEL, stage="preflight")
    assert not build_audit("d", "r", [_attempt("m", 1, refused)]).complete


def test_a_try_that_left_no_task_log_says_so_not_that_it_logged_no_end() -> None:
    """An in-process `airflow dags test` writes no task log: the trail says why it has nothing to read."""
    from airflow_provider_idbt.commands.audit import FROM_NOWHERE

    reason = "runs of `airflow dags test` without --use-executor run tasks in-process and write no task log"
    silent = TaskAttempt("m", -1, 1, "success", "DbtIdentityOperator", [], FROM_NOWHERE, reason)
    audit = build_audit("d", "r", [silent])
    (model,) = audit.models
    assert model.missing == [f"try 1 left no task log: {reason}"]
    assert "no identity-tagged end event" not in render_text(audit)


def test_events_read_from_the_xcom_of_a_try_without_a_log_make_a_complete_trail() -> None:
    from airflow_provider_idbt.commands.audit import FROM_NOWHERE, FROM_XCOM

    built = [json.loads(events.format_event(e)) for e in _run("m", 2, "success")]
    earlier = TaskAttempt("m", -1, 1, "failed", "DbtIdentityOperator", [], FROM_NOWHERE, "no log")
    last = TaskAttempt("m", -1, 2, "success", "DbtIdentityOperator", built, FROM_XCOM)
    audit = build_audit("d", "r", [earlier, last])
    (model,) = audit.models
    assert model.missing == ["try 1 left no task log: no log"]
    assert model.tries[1].outcome == "success" and model.tries[1].events_from == FROM_XCOM
    assert "read from the try's idbt_events XCom" in render_text(audit)
    assert build_audit("d", "r", [last]).complete


def test_a_warehouse_auth_failure_that_fails_the_try_is_its_outcome() -> None:
    keys = events.RunKeys("d", "r", "m", 1)
    identity = make_token().identity
    refused = events.build_event(
        "auth_failure",
        keys,
        identity=identity,
        model=MODEL,
        connection="c",
        error_class="WarehouseAuthFailed",
        error_message="password authentication failed",
        stage="warehouse",
        action="retry_task",
    )
    start, end = _run("m", 1, "error")
    (model,) = build_audit("d", "r", [_attempt("m", 1, start, refused, end)]).models
    assert model.tries[0].outcome == "auth_failure" and model.complete
