"""DbtIdentityOperator's arguments: defaults stay on the class, given values on the task, bad ones refused by name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator
from airflow_provider_idbt.operators.dbt_tests import DbtIdentityTestOperator

COMMON = {"project_dir": "/p", "manifest_path": "/p/target/manifest.json", "identity_conn_id": "idbt_dev"}


def _task(cls: type[DbtIdentityOperator] = DbtIdentityOperator, **kwargs: Any) -> DbtIdentityOperator:
    with DAG("args", schedule=None):
        return cls(task_id="t", model="orders", **{"profiles_dir": "/p", **COMMON, **kwargs})


def test_defaults_are_read_from_the_class_and_not_set_on_the_task() -> None:
    task = _task()
    assert (task.command, task.run_hooks, task.min_token_ttl) == ("run", True, timedelta(minutes=10))
    assert task.profile_name is task.target is task.profile_args is task.dbt_vars is task.tests is None
    assert task.query_comment is None and task.full_refresh is False
    set_on_task = {"command", "run_hooks", "min_token_ttl", "profile_name", "dbt_python", "query_comment", "tests"}
    assert not set_on_task & set(vars(task))
    assert {"model", "project_dir", "manifest_path", "identity_conn_id", "profiles_dir"} <= set(vars(task))


def test_given_values_are_set_on_the_task_and_copied() -> None:
    profile_args = {"type": "duckdb", "path": "w.duckdb"}
    task = _task(
        profiles_dir=None,
        profile_args=profile_args,
        target="prod",
        min_token_ttl=900,
        dbt_vars={"day": "2026-12-01"},
        query_comment_claims=("sub", "iss"),
        query_comment_hash=True,
        command="build",
        run_hooks="on-run-end",
        execution_mode="warm",
    )
    assert task.profile_args == profile_args and task.profile_args is not profile_args
    assert (task.target, task.min_token_ttl, task.command, task.run_hooks) == (
        "prod",
        timedelta(seconds=900),
        "build",
        ("on-run-end",),
    )
    assert task.query_comment is not None and task.query_comment.claims == ("sub", "iss")
    assert task.query_comment.hash_claims and task.execution_mode == "warm"
    # Another task of the same class still sees the defaults.
    assert _task().target is None and _task().command == "run"


def test_a_task_of_given_tests_is_a_test_command() -> None:
    task = _task(command="test", tests=("test.p.not_null_orders_id.1",))
    assert (task.command, task.tests) == ("test", ["test.p.not_null_orders_id.1"])
    test_task = _task(DbtIdentityTestOperator, tests=["test.p.a.1"])
    assert (test_task.command, test_task.tests) == ("test", ["test.p.a.1"])
    assert "tests" in DbtIdentityTestOperator.template_fields


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (
            DbtIdentityOperator,
            {"tests": ["test.p.a.1"]},
            r"t: tests= names the tests of a `dbt test` task, not of `dbt run`",
        ),
        (DbtIdentityOperator, {"command": "test", "tests": "test.p.a.1"}, r"t: tests must be a non-empty list"),
        (DbtIdentityTestOperator, {}, r"t: tests must be a non-empty list of dbt tests, got None"),
        (DbtIdentityTestOperator, {"tests": ["x"], "command": "seed"}, r"not of `dbt seed`"),
        (DbtIdentityOperator, {"command": "compile"}, r"t: command 'compile' is not one a task runs on one node"),
        (DbtIdentityOperator, {"run_hooks": "on-start"}, r"t: run_hooks must be True, False or hook types"),
        (DbtIdentityOperator, {"command": "test", "full_refresh": True}, r"t: full_refresh does not apply"),
        (DbtIdentityOperator, {"execution_mode": "hot"}, r"t: execution_mode must be one of subprocess, warm"),
        (DbtIdentityOperator, {"profiles_dir": None}, r"t: give either profiles_dir .* or profile_args"),
    ],
)
def test_bad_arguments_are_refused_with_the_task_named(
    cls: type[DbtIdentityOperator], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _task(cls, **kwargs)
