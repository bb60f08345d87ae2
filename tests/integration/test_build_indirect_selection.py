"""Real dbt on DuckDB: a node's `dbt build` (and `dbt test`) runs the tests of that node and of nodes upstream of
it, never a test that also reads a node built later ("buildable" indirect selection), so a relationships test
runs once, in the task of the node built last, after both tables exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, copy_project, parse_project

pytestmark = pytest.mark.integration

TEST_ID_PREFIX = "test.idbt_example.relationships_stg_customers_customer_id__customer_id__ref_customer_orders_"


def _with_relationship(schema: Path) -> None:
    text = schema.read_text()
    old = "        data_tests: [unique, not_null]\n  - name: stg_orders"
    assert old in text
    new = (
        "        data_tests:\n"
        "          - unique\n"
        "          - not_null\n"
        "          - relationships:\n"
        "              arguments: {to: ref('customer_orders'), field: customer_id}\n"
        "  - name: stg_orders"
    )
    schema.write_text(text.replace(old, new, 1))


def test_a_test_reading_a_later_node_runs_with_that_node_once(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE_PROJECT, tmp_path / "idbt_example")
    _with_relationship(project.project_dir / "models" / "staging" / "schema.yml")
    parse_project(project)
    index = ManifestIndex.load(project.manifest_path)
    runs = 0

    def run(command: str, name: str) -> list[str]:
        nonlocal runs
        runs += 1
        spec = index.model(name) if command != "seed" else None
        invocation = DbtInvocation(
            project_dir=str(project.project_dir),
            profiles_dir=str(project.project_dir),
            select=spec.selector if spec else "package:idbt_example",
            exclude=spec.selector_exclude if spec else None,
            target_path=str(tmp_path / f"run{runs}" / "target"),
            log_path=str(tmp_path / f"run{runs}" / "logs"),
            command=command,
            env=project.env,
            partial_parse_from=str(project.manifest_path.parent),
        )
        result = SubprocessRunner().run(invocation, {TOKEN_ENV_VAR: "not-a-secret"}, lambda _line: None)
        assert result.status == "success", (command, name, result.message, result.failed_nodes)
        return [node.unique_id for node in result.nodes]

    run("seed", "")
    staging = run("build", "stg_customers")
    # Built before customer_orders exists: with dbt's default ("eager") the relationships test ran here and failed.
    assert not [uid for uid in staging if uid.startswith(TEST_ID_PREFIX)], staging
    assert any(uid.startswith("test.idbt_example.unique_stg_customers_customer_id") for uid in staging)
    for name in ("stg_orders", "stg_payments", "order_totals"):
        run("run", name)
    mart = run("build", "customer_orders")
    assert len([uid for uid in mart if uid.startswith(TEST_ID_PREFIX)]) == 1, mart
    # `dbt test` on a node selects the same way.
    assert not [uid for uid in run("test", "stg_customers") if uid.startswith(TEST_ID_PREFIX)]
