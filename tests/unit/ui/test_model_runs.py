"""ui/model_runs.py: a try's row folded from its events, the filter, the order and the CSV/JSON export."""

from __future__ import annotations

import ast
import csv
import io
import json
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt import events
from airflow_provider_idbt.ui import model_runs as mr
from airflow_provider_idbt.ui.model_runs import ModelRun, RunFilter, TryRecord
from tests.unit.identity.test_token import SECRET, make_token

MODEL = {
    "unique_id": "model.p.m",
    "namespace": "postgres://127.0.0.1:5432",
    "inputs": ["wh.raw.a", "wh.raw.b"],
    "outputs": ["wh.analytics.m"],
}
T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def _events(task_id: str, try_number: int, *kinds: str, status: str = "success", **extra: Any) -> tuple[dict, ...]:
    """A try's events as the XCom holds them (through JSON, as the metadata database hands them back)."""
    keys = events.RunKeys("d", "r", task_id, try_number)
    identity = make_token().identity
    built = {
        "token": events.build_event(
            "token_issued", keys, identity=identity, model=MODEL, audience=["wh"], expires_at="2026-11-23T19:00:00Z"
        ),
        "start": events.build_event(
            "model_run", keys, identity=identity, model=MODEL, phase="start", warehouse_role="finance_admin"
        ),
        "mismatch": events.build_event(
            "permission_mismatch",
            keys,
            identity=identity,
            model=MODEL,
            stage="warehouse",
            required=["table payments"],
            held=["analytics"],
            warehouse_message="permission denied for table payments",
            error_class="PermissionMismatch",
            error_message="the warehouse refused identity `svc-dbt`",
        ),
        "auth": events.build_event(
            "auth_failure",
            keys,
            identity=identity,
            model=MODEL,
            connection="idbt_pg",
            error_class="WarehouseAuthFailed",
            error_message="password authentication failed",
            stage="warehouse",
            action="retry_task",
            **extra,
        ),
        "end": events.build_event(
            "model_run", keys, identity=identity, model=MODEL, phase="end", status=status, duration_s=1.25
        ),
    }
    return tuple(json.loads(events.format_event(built[kind])) for kind in kinds)


def _record(task_id: str = "m", try_number: int = 1, state: str = "success", **kwargs: Any) -> TryRecord:
    start = kwargs.pop("start_date", T0 + timedelta(minutes=try_number))
    return TryRecord(
        dag_id=kwargs.pop("dag_id", "d"),
        run_id="r",
        task_id=task_id,
        map_index=-1,
        try_number=try_number,
        state=state,
        operator="DbtIdentityOperator",
        start_date=start,
        end_date=start + timedelta(seconds=3) if start else None,
        duration_s=3.0,
        hostname="worker-1",
        **kwargs,
    )


def test_a_successful_try_carries_the_chain_from_identity_to_status() -> None:
    run = mr.fold_try(_record(events=_events("m", 1, "token", "start", "end"), source=mr.FROM_EVENTS))
    assert (run.model, run.outcome, run.state, run.source) == ("model.p.m", "success", "success", "events")
    assert (run.issuer, run.subject, run.principal, run.groups) == (
        "https://idp.example.test",
        "svc-dbt",
        "dbt-runner",
        ("analytics",),
    )
    assert run.token_fingerprint and run.token_fingerprint.startswith("sha256:")
    assert run.token_expires_at and run.warehouse_role == "finance_admin"
    assert run.inputs == ("wh.raw.a", "wh.raw.b") and run.outputs == ("wh.analytics.m",)
    assert run.namespace == "postgres://127.0.0.1:5432" and run.duration_s == 3.0 and run.hostname == "worker-1"
    assert run.highlight is None


def test_a_warehouse_refusal_is_highlighted_with_the_warehouses_message() -> None:
    tried = _events("m", 1, "token", "start", "mismatch", "end", status="error")
    run = mr.fold_try(_record(state="failed", events=tried, source=mr.FROM_EVENTS))
    assert run.outcome == "permission_mismatch" and run.highlight == "permission_mismatch"
    assert run.warehouse_message == "permission denied for table payments" and run.stage == "warehouse"
    assert run.required == ("table payments",) and run.held == ("analytics",)


def test_an_auth_failure_the_try_did_not_recover_from_stays_its_outcome() -> None:
    failed = mr.fold_try(_record(state="failed", events=_events("m", 1, "start", "auth", "end", status="error")))
    assert failed.outcome == "auth_failure" and failed.highlight == "auth_failure" and failed.stage == "warehouse"
    assert failed.error_message == "password authentication failed"
    # Refused once, refreshed, then the model ran: the try succeeded.
    recovered = mr.fold_try(_record(events=_events("m", 1, "start", "auth", "token", "end")))
    assert recovered.outcome == "success" and recovered.highlight is None and recovered.stage is None


def test_a_try_known_only_from_history_says_so_and_takes_the_model_from_its_sibling() -> None:
    earlier = _record(try_number=1, state="failed")
    last = _record(try_number=2, events=_events("m", 2, "start", "end"), source=mr.FROM_EVENTS)
    first, second = mr.fold_task_instance([last, earlier])
    assert (first.try_number, first.source, first.outcome, first.subject) == (1, "history", "task failed", None)
    assert first.model == "model.p.m" and first.outputs == ("wh.analytics.m",)
    assert (second.try_number, second.source, second.subject) == (2, "events", "svc-dbt")


def test_a_task_with_no_events_at_all_is_named_by_its_task_id() -> None:
    (run,) = mr.fold_task_instance([_record(task_id="stale", state="failed")])
    assert (run.model, run.outcome, run.source) == ("stale", "task failed", "history")


def test_naive_times_from_a_database_are_utc() -> None:
    run = mr.fold_try(_record(start_date=datetime(2026, 11, 23, 18, 0)))
    assert run.start_date == T0


def _runs() -> list[ModelRun]:
    ok = mr.fold_try(_record("ok", events=_events("ok", 1, "start", "end"), source="events"))
    denied = mr.fold_try(
        _record("denied", state="failed", events=_events("denied", 1, "start", "mismatch", "end", status="error"))
    )
    other = replace(mr.fold_try(_record("x", dag_id="other", start_date=T0 + timedelta(days=2))), subject="Alice")
    return [ok, denied, other]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RunFilter(), {"ok", "denied", "x"}),
        (RunFilter(dag_id="d"), {"ok", "denied"}),
        (RunFilter(task_id="ok"), {"ok"}),
        (RunFilter(status="FAILED"), {"denied"}),
        (RunFilter(status="permission_mismatch"), {"denied"}),
        (RunFilter(identity="SVC-D"), {"ok", "denied"}),  # subject, any case
        (RunFilter(identity="example.test"), {"ok", "denied"}),  # issuer
        (RunFilter(identity="analyt"), {"ok", "denied"}),  # a group
        (RunFilter(identity="alice"), {"x"}),
        (RunFilter(since=T0 + timedelta(days=1)), {"x"}),
        (RunFilter(until=T0 + timedelta(days=1)), {"ok", "denied"}),
        (RunFilter(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=1, seconds=1)), {"ok", "denied"}),
        (RunFilter(until=T0 + timedelta(minutes=1)), set()),  # until is exclusive
        (RunFilter(map_index=0), set()),
    ],
)
def test_filters(flt: RunFilter, expected: set[str]) -> None:
    assert {r.task_id for r in _runs() if mr.matches(r, flt)} == expected


def test_a_period_filter_leaves_out_tries_that_never_started_or_ended() -> None:
    never = replace(_runs()[0], start_date=None, end_date=None)
    assert mr.matches(never, RunFilter()) and not mr.matches(never, RunFilter(since=T0))


def test_parse_filter_reads_text_and_says_what_is_wrong() -> None:
    flt = mr.parse_filter(
        {"dag_id": "d", "status": " ", "since": "2026-11-23", "until": "2026-11-24T06:00:00+01:00", "map_index": "-1"}
    )
    assert flt == RunFilter(
        dag_id="d", map_index=-1, since=T0 - timedelta(hours=18), until=datetime(2026, 11, 24, 5, tzinfo=UTC)
    )
    assert mr.parse_filter({"since": "2026-11-23T18:00:00Z"}).since == T0
    assert mr.parse_filter({"since": "2026-11-23T18:00:00"}).since == T0  # no offset: UTC
    with pytest.raises(ValueError, match="since 'yesterday' is not an ISO 8601 date"):
        mr.parse_filter({"since": "yesterday"})
    with pytest.raises(ValueError, match="map_index 'x' is not an integer"):
        mr.parse_filter({"map_index": "x"})
    with pytest.raises(ValueError, match="unknown filter colour"):
        mr.parse_filter({"colour": "red"})
    with pytest.raises(ValueError, match="must be after since"):
        mr.parse_filter({"since": "2026-11-24", "until": "2026-11-23"})


def test_order_is_newest_first_and_stable() -> None:
    runs = _runs()
    assert [r.task_id for r in mr.ordered(runs)] == ["x", "denied", "ok"]  # x two days later; ok/denied tie
    unstarted = replace(runs[0], task_id="zz", start_date=None, end_date=None)
    assert mr.ordered([unstarted, *runs])[-1] is unstarted
    assert mr.ordered(reversed(runs)) == mr.ordered(runs)


def test_csv_and_json_hold_the_same_rows_in_the_same_columns() -> None:
    runs = mr.ordered(_runs())
    table = list(csv.reader(io.StringIO(mr.to_csv(runs), newline="")))
    records = json.loads(mr.to_json(runs))
    assert tuple(table[0]) == mr.COLUMNS and [list(r) for r in records] == [list(mr.COLUMNS)] * len(runs)
    assert set(mr.COLUMNS) == {f.name for f in fields(ModelRun)} and len(mr.COLUMNS) == len(set(mr.COLUMNS))
    for line, record in zip(table[1:], records, strict=True):
        for column, cell in zip(mr.COLUMNS, line, strict=True):
            value = record[column]
            if value is None:
                assert cell == ""
            elif isinstance(value, list):
                assert cell == ";".join(value)
            else:
                assert cell == str(value), column
    denied = next(r for r in records if r["task_id"] == "denied")
    assert denied["warehouse_message"] == "permission denied for table payments"
    assert denied["groups"] == ["analytics"] and denied["start_date"] == "2026-11-23T18:01:00+00:00"
    assert denied["map_index"] == -1 and denied["try_number"] == 1
    assert SECRET not in mr.to_csv(runs) + mr.to_json(runs)


@pytest.mark.parametrize("hostile", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_hostile_claim_cannot_become_a_spreadsheet_formula(hostile: str) -> None:
    run = replace(_runs()[0], subject=hostile, groups=(hostile, "ok"), error_message=hostile)
    (header, line) = list(csv.reader(io.StringIO(mr.to_csv([run]), newline="")))
    cells = dict(zip(header, line, strict=True))
    for column in ("subject", "groups", "error_message"):
        assert cells[column].startswith("'" + hostile[0]), (column, cells[column])
    assert cells["map_index"] == "-1"  # numbers are numbers, not text to defuse
    # JSON is data, not a spreadsheet: the claim as it was.
    assert json.loads(mr.to_json([run]))[0]["subject"] == hostile


def test_csv_quotes_separators_quotes_and_newlines() -> None:
    text = 'line one, with "quotes"\nline two'
    run = replace(_runs()[0], error_message=text)
    (_, line) = list(csv.reader(io.StringIO(mr.to_csv([run]), newline="")))
    assert line[mr.COLUMNS.index("error_message")] == text
    assert mr.to_csv([]) == ",".join(mr.COLUMNS) + "\r\n" and json.loads(mr.to_json([])) == []


def test_the_module_is_pure() -> None:
    tree = ast.parse(Path(mr.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not [name for name in imported if name.split(".")[0] == "airflow"]
