"""DbtIdentityTestOperator: run a given set of dbt tests (of one node) as one task, with the task's own token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.lineage import ModelLineage
    from airflow_provider_idbt.dbt.manifest import ManifestIndex, ModelSpec


class DbtIdentityTestOperator(DbtIdentityOperator):
    """Run exactly ``tests`` (dbt unique ids) with ``dbt test``: the task group's test task after a node.

    ``model`` names the node the tests check (its events and links name it); the task selects only the listed
    tests, so a test the DAG's selection excluded never runs, and a test across two nodes runs once, after both.

    :param tests: the tests to run, as unique ids (``test.<package>.<name>.<hash>``) or names.
    """

    template_fields: Sequence[str] = (*DbtIdentityOperator.template_fields, "tests")

    def __init__(self, *, tests: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("command", "test")
        super().__init__(**kwargs)
        if self.command != "test":
            raise ValueError(f"{self.task_id}: DbtIdentityTestOperator runs `dbt test`, not `dbt {self.command}`")
        if isinstance(tests, str) or not tests:
            raise ValueError(f"{self.task_id}: tests must be a non-empty list of dbt tests, got {tests!r}")
        self.tests = list(tests)

    def _node_spec(self, index: ManifestIndex) -> ModelSpec:
        spec = super()._node_spec(index)
        members = [index.node(ref, ("test",)) for ref in self.tests]
        tested = tuple(dict.fromkeys(relation for member in members for relation in member.inputs))
        # One `--select` naming each test; a test task writes nothing, it reads what it tests.
        return replace(
            spec,
            select_override=" ".join(member.selector for member in members),
            selector_exclude=None,
            inputs=tested,
            output=None,
        )

    def idbt_model_lineage(self) -> ModelLineage | None:
        lineage = super().idbt_model_lineage()
        return None if lineage is None else replace(lineage, outputs=())
