"""DbtIdentityTestOperator: run a given set of dbt tests (of one node) as one task, with the task's own token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.manifest import ManifestIndex, ModelSpec


class DbtIdentityTestOperator(DbtIdentityOperator):
    """Run exactly ``tests`` (dbt unique ids) with ``dbt test``: the task group's test task after a node.

    ``DbtIdentityOperator(command="test", tests=[...])`` under its own name, with ``tests`` required: ``model``
    names the node the tests check (its events and links name it); the task selects only the listed tests, so a
    test the DAG's selection excluded never runs, and a test across two nodes runs once, after both.

    :param tests: the tests to run, as unique ids (``test.<package>.<name>.<hash>``) or names.
    """

    template_fields: Sequence[str] = (*DbtIdentityOperator.template_fields, "tests")
    command = "test"
    _requires_tests = True
    # No __init__ of its own: Airflow wraps each class's __init__ in its default-arguments handling, run once per
    # class in the hierarchy for every task made (bench/parse_scale.py).


def checked_tests(task_id: str, command: str, tests: Sequence[str] | None) -> list[str]:
    """A task's ``tests=``, or a clear error: a non-empty list, for a `dbt test` task only."""
    if command != "test":
        raise ValueError(f"{task_id}: tests= names the tests of a `dbt test` task, not of `dbt {command}`")
    if isinstance(tests, str) or not tests:
        raise ValueError(f"{task_id}: tests must be a non-empty list of dbt tests, got {tests!r}")
    return list(tests)


def given_tests_spec(index: ManifestIndex, spec: ModelSpec, tests: Sequence[str]) -> ModelSpec:
    """The node ``spec`` as a task of exactly ``tests`` runs it: one ``--select`` naming each test."""
    members = [index.node(ref, ("test",)) for ref in tests]
    tested = tuple(dict.fromkeys(relation for member in members for relation in member.inputs))
    # A test task writes nothing, it reads what it tests.
    return replace(
        spec,
        select_override=" ".join(member.selector for member in members),
        selector_exclude=None,
        inputs=tested,
        output=None,
    )
