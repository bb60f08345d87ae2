"""The idbt.event/1 builder, formatter and parser."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from airflow_provider_idbt import events
from tests.unit.identity.test_token import SECRET, make_token

KEYS = events.RunKeys(dag_id="d", run_id="r", task_id="g.t", try_number=2, map_index=-1)


def test_event_carries_keys_identity_and_model() -> None:
    token = make_token()
    event = events.build_event(
        "model_run",
        KEYS,
        identity=token.identity,
        model={"unique_id": "model.p.m", "inputs": ["a"], "outputs": ["b"]},
        phase="end",
        status="success",
        error_message=None,
    )
    assert event["schema"] == "idbt.event/1" and event["kind"] == "model_run"
    assert event["dag_id"] == "d" and event["try_number"] == 2 and event["map_index"] == -1
    assert event["identity"]["subject"] == "svc-dbt"
    assert "error_message" not in event  # None fields are left out
    assert SECRET not in events.format_event(event)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown idbt event kind"):
        events.build_event("nope", KEYS)


def test_parse_plain_and_airflow_structured_lines() -> None:
    line = events.format_event(events.build_event("task_lifecycle", KEYS, phase="running"))
    assert events.parse_event(line)["phase"] == "running"
    wrapped = json.dumps({"timestamp": "t", "level": "info", "event": line, "logger": "x"})
    assert events.parse_event(wrapped)["phase"] == "running"
    assert events.parse_event("plain text") is None
    assert events.parse_event('{"event": "not an event"}') is None
    assert events.parse_event("{broken") is None


def test_emit_writes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("idbt.test")
    with caplog.at_level(logging.INFO, logger="idbt.test"):
        events.emit(logger, events.build_event("task_lifecycle", KEYS, phase="success"))
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    assert events.parse_event(record.getMessage())["phase"] == "success"


def test_run_keys_from_a_task_instance() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=3, map_index=0)
    assert events.RunKeys.from_task_instance(ti).map_index == 0
    ti.map_index = None
    assert events.RunKeys.from_task_instance(ti).map_index == -1


def test_emitted_events_are_recorded_per_try() -> None:
    keys = events.RunKeys(dag_id="journal", run_id="r", task_id="t", try_number=1)
    other = events.RunKeys(dag_id="journal", run_id="r", task_id="t", try_number=2)
    logger = logging.getLogger("idbt.test.journal")
    events.emit(logger, events.build_event("task_lifecycle", keys, phase="running"))
    events.emit(logger, events.build_event("task_lifecycle", keys, phase="success"))
    assert [e["phase"] for e in events.recorded(keys)] == ["running", "success"]
    assert events.recorded(other) == []
    for i in range(100):  # the journal stays bounded
        events.emit(logger, events.build_event("task_lifecycle", events.RunKeys("j", "r", f"t{i}", 1), phase="x"))
    assert events.recorded(keys) == []
