"""The listener stays silent for foreign tasks, logs provider tasks, and never raises."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_provider_idbt.events import parse_event
from airflow_provider_idbt.listeners import identity_listener


def _ti(task: object) -> SimpleNamespace:
    return SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=1, map_index=-1, task=task)


PROVIDER_TASK = SimpleNamespace(_idbt_provider_task=True, model="stg_orders", _idbt_unique_id=None)


def _events(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [e for r in caplog.records if (e := parse_event(r.getMessage())) is not None]


def test_provider_task_lifecycle_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        identity_listener.on_task_instance_running(None, _ti(PROVIDER_TASK))
        identity_listener.on_task_instance_failed(None, _ti(PROVIDER_TASK), ValueError("boom"))
    running, failed = _events(caplog)
    assert running["phase"] == "running" and running["model"]["unique_id"] == "stg_orders"
    assert failed["phase"] == "failed" and failed["error_class"] == "ValueError"
    assert failed["error_message"] == "boom"


def test_other_tasks_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        identity_listener.on_task_instance_success(None, _ti(SimpleNamespace()))
        identity_listener.on_task_instance_success(None, SimpleNamespace(task=None))
    assert _events(caplog) == []


def test_a_broken_task_instance_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    broken = SimpleNamespace(task=PROVIDER_TASK)  # no dag_id, run_id, ...
    with caplog.at_level(logging.DEBUG):
        identity_listener.on_task_instance_success(None, broken)
    assert _events(caplog) == []
    assert any("could not emit" in r.getMessage() for r in caplog.records)
