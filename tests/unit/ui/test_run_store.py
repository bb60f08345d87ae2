"""ui/run_store.py's reading of an `idbt_events` XCom value (the queries run against real Airflow in
tests/e2e/test_model_runs.py)."""

from __future__ import annotations

import json

from airflow_provider_idbt import events
from airflow_provider_idbt.ui.run_store import events_of

EVENT = events.build_event("model_run", events.RunKeys("d", "r", "t", 1), model={"unique_id": "m"}, phase="start")


def test_a_list_or_its_json_text_is_read_the_same() -> None:
    assert events_of([EVENT]) == events_of(json.dumps([EVENT])) == (EVENT,)
    assert events_of(json.dumps([EVENT]).encode()) == (EVENT,)


def test_anything_but_idbt_events_is_left_out_or_refused() -> None:
    assert events_of([EVENT, {"schema": "other/1"}, "text", 3]) == (EVENT,)
    assert events_of([]) == ()
    for value in (None, {"schema": events.SCHEMA}, "not json", "42"):
        assert events_of(value) is None
