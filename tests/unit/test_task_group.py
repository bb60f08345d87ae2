"""DbtIdentityTaskGroup at DAG-parse time on a real `dbt parse` of the example project: tasks, edges, tests, assets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator, DbtIdentityTaskGroup
from airflow_provider_idbt.dbt import manifest as manifest_module
from airflow_provider_idbt.operators.dbt_tests import DbtIdentityTestOperator
from tests.fixtures.dbt_projects import DbtProject

P = "idbt_example"


def _dag(project: DbtProject, manifest: Path | None = None, **options: Any) -> tuple[DAG, DbtIdentityTaskGroup]:
    manifest_module._cache.clear()
    with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        group = DbtIdentityTaskGroup(
            "models",
            project_dir=project.project_dir,
            manifest_path=manifest or project.manifest_path,
            identity_conn_id="idbt_dev",
            profiles_dir=project.profiles_dir,
            operator_kwargs={"pool": "idbt_duckdb", "retries": 2},
            **options,
        )
    return dag, group


def _upstream(dag: DAG, task_id: str) -> set[str]:
    return set(dag.get_task(task_id).upstream_task_ids)


def _edited(project: DbtProject, tmp_path: Path, edit: Any) -> Path:
    data = json.loads(project.manifest_path.read_text())
    edit(data)
    target = tmp_path / "target"
    target.mkdir(exist_ok=True)
    (target / "manifest.json").write_text(json.dumps(data))
    return target / "manifest.json"


def test_models_seeds_and_tests_by_default_with_the_manifests_edges(example_project: DbtProject) -> None:
    dag, group = _dag(example_project)
    manifest = json.loads(example_project.manifest_path.read_text())
    runnable = {
        uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] in ("model", "seed", "snapshot")
    }
    assert set(group.model_tasks) == set(runnable)
    for uid, task in group.model_tasks.items():
        assert type(task) is DbtIdentityOperator
        assert task.task_id == f"models.{runnable[uid]['name']}"
        assert task.model == uid and task.pool == "idbt_duckdb" and task.retries == 2
        assert task.command == {"model": "run", "seed": "seed"}[runnable[uid]["resource_type"]]
        parents = {p for p in runnable[uid]["depends_on"].get("nodes", []) if p in runnable}
        assert _upstream(dag, task.task_id) == {group.model_tasks[p].task_id for p in parents}
    assert _upstream(dag, "models.stg_orders") == {"models.orders"}  # a seed, then the model reading it
    # One test task after each tested node, running exactly that node's tests.
    tests = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "test"}
    assert tests and {t for task in group.test_tasks.values() for t in task.tests} == tests
    order_tests = dag.get_task("models.order_totals__test")
    assert isinstance(order_tests, DbtIdentityTestOperator)
    assert _upstream(dag, "models.order_totals__test") == {"models.order_totals"}
    assert order_tests.model == f"model.{P}.order_totals" and len(order_tests.tests) == 2
    assert len(dag.tasks) == len(runnable) + len(group.test_tasks)


def test_display_names_docs_and_assets(example_project: DbtProject) -> None:
    dag, _ = _dag(example_project)
    task = dag.get_task("models.order_totals")
    assert task.task_display_name == "order_totals"
    assert task.doc_md == "Each order with the sum of its payments."
    # The OpenLineage dataset of the events (namespace duckdb://<path>, name db.schema.table), as Asset URIs.
    assert [a.uri for a in task.outlets] == [f"duckdb://idbt_example.duckdb/{P}/main/order_totals"]
    assert sorted(a.uri for a in task.inlets) == [
        f"duckdb://idbt_example.duckdb/{P}/main/stg_orders",
        f"duckdb://idbt_example.duckdb/{P}/main/stg_payments",
    ]
    assert dag.get_task("models.order_totals__test").outlets == []
    _, plain = _dag(example_project, assets=False)
    assert all(not t.outlets for t in plain.model_tasks.values())


def test_test_placement_modes(example_project: DbtProject) -> None:
    dag, group = _dag(example_project, tests="build")
    assert not group.test_tasks
    assert dag.get_task("models.order_totals").command == "build"
    assert dag.get_task("models.payments").command == "seed"  # no tests: nothing to build with it
    _, group = _dag(example_project, tests="none")
    assert not group.test_tasks
    dag, group = _dag(example_project, tests="after_all")
    runs = {t.task_id for t in group.model_tasks.values()}
    leaves = {t.task_id for t in group.model_tasks.values() if not set(t.downstream_task_ids) & runs}
    assert leaves == {"models.customer_orders"}
    for task in group.test_tasks.values():
        assert set(task.upstream_task_ids) == leaves
    with pytest.raises(ValueError, match=r"tests='later' is not a test placement"):
        _dag(example_project, tests="later")


def test_selection_narrows_the_tasks_and_keeps_edges_through_what_it_drops(example_project: DbtProject) -> None:
    dag, _ = _dag(example_project, select="+customer_orders", exclude="stg_orders", tests="none")
    names = {t.task_id for t in dag.tasks}
    assert names == {"models.customers", "models.orders", "models.payments", "models.stg_customers"} | {
        "models.stg_payments",
        "models.order_totals",
        "models.customer_orders",
    }
    # stg_orders is not a task, yet order_totals still waits for the seed stg_orders reads (dbt's own order).
    assert "models.orders" in _upstream(dag, "models.order_totals")
    _, seeds_only = _dag(example_project, select="resource_type:seed", tests="none")
    assert {t.command for t in seeds_only.model_tasks.values()} == {"seed"}


def test_selecting_nothing_is_a_clear_parse_error(example_project: DbtProject) -> None:
    with pytest.raises(ValueError, match=r"select='tag:nope'.*matches no model, seed or snapshot.*dbt ls"):
        _dag(example_project, select="tag:nope")


def test_folder_groups(example_project: DbtProject) -> None:
    dag, _ = _dag(example_project, folder_groups=True)
    assert "models.marts.order_totals" in dag.task_dict
    assert "models.marts.order_totals__test" in dag.task_dict
    assert "models.staging.stg_orders" in dag.task_dict
    assert _upstream(dag, "models.marts.order_totals") == {"models.staging.stg_orders", "models.staging.stg_payments"}


def test_meta_settings_and_api_overrides(example_project: DbtProject, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        node = data["nodes"][f"model.{P}.order_totals"]
        node["meta"] = {"idbt": {"pool": "finance", "retries": 0, "identity_conn_id": "idbt_finance"}}

    manifest = _edited(example_project, tmp_path, edit)
    dag, _ = _dag(example_project, manifest, node_settings={"order_totals": {"retries": 5, "queue": "finance"}})
    task = dag.get_task("models.order_totals")
    assert (task.pool, task.retries, task.queue, task.identity_conn_id) == ("finance", 5, "finance", "idbt_finance")
    tests = dag.get_task("models.order_totals__test")
    assert tests.identity_conn_id == "idbt_finance"  # a node's tests run as whoever builds it
    assert dag.get_task("models.stg_orders").identity_conn_id == "idbt_dev"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"order_totals": {"pool": "bad name!"}},
            r"order_totals: node_settings.pool must be a name",
        ),
        ({"order_totals": {"retries": -1}}, r"order_totals: node_settings.retries must be a whole number"),
        ({"order_totals": {"pol": "x"}}, r"order_totals: node_settings.pol is not a setting idbt knows"),
        ({"order_total": {"pool": "x"}}, r"node_settings names 'order_total', which is no model"),
    ],
)
def test_invalid_settings_name_the_model(example_project: DbtProject, settings: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _dag(example_project, node_settings=settings)


def test_invalid_meta_names_the_model(example_project: DbtProject, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["nodes"][f"model.{P}.stg_orders"]["meta"] = {"idbt": {"execution_timeout": "soon"}}

    with pytest.raises(ValueError, match=r"stg_orders: meta.idbt.execution_timeout must be a number of seconds"):
        _dag(example_project, _edited(example_project, tmp_path, edit))


def test_ephemeral_models_fold_into_their_children(example_project: DbtProject, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["nodes"][f"model.{P}.stg_orders"]["config"]["materialized"] = "ephemeral"

    dag, _ = _dag(example_project, _edited(example_project, tmp_path, edit), tests="none")
    assert "models.stg_orders" not in dag.task_dict
    assert _upstream(dag, "models.order_totals") == {"models.orders", "models.stg_payments"}
    assert sorted(a.uri.rsplit("/", 1)[-1] for a in dag.get_task("models.order_totals").inlets) == [
        "orders",
        "stg_payments",
    ]


def test_disabled_nodes_never_become_tasks(example_project: DbtProject, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        node = data["nodes"].pop(f"model.{P}.order_totals")
        node["config"]["enabled"] = False
        data["disabled"] = {node["unique_id"]: [node]}
        data["nodes"][f"model.{P}.stg_payments"]["config"]["enabled"] = False

    dag, _ = _dag(example_project, _edited(example_project, tmp_path, edit))
    assert "models.order_totals" not in dag.task_dict and "models.stg_payments" not in dag.task_dict


def test_a_cycle_is_a_clear_parse_error(example_project: DbtProject, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["nodes"][f"model.{P}.stg_orders"]["depends_on"]["nodes"].append(f"model.{P}.order_totals")

    with pytest.raises(
        ValueError, match=r"dependency cycle: .*order_totals -> .*stg_orders -> .*order_totals; .*remove one"
    ):
        _dag(example_project, _edited(example_project, tmp_path, edit))


def test_missing_or_truncated_manifest_is_a_clear_parse_error(example_project: DbtProject, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"task group `models`.*unreadable.*dbt parse"):
        _dag(example_project, tmp_path / "target" / "manifest.json")
    (tmp_path / "half.json").write_text(example_project.manifest_path.read_text()[:5000])
    with pytest.raises(ValueError, match=r"task group `models`.*truncated"):
        _dag(example_project, tmp_path / "half.json")


def test_a_manifest_of_another_project_is_a_clear_parse_error(example_project: DbtProject, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["metadata"]["project_name"] = "jaffle_shop"

    with pytest.raises(ValueError, match=r"built for project 'jaffle_shop'.*names 'idbt_example'"):
        _dag(example_project, _edited(example_project, tmp_path, edit))


def test_operator_needs_a_profile_source() -> None:
    with pytest.raises(ValueError, match=r"profiles_dir .* or profile_args"):
        DbtIdentityOperator(task_id="t", model="m", project_dir=".", manifest_path="m.json", identity_conn_id="c")


def _with_hooks(data: dict[str, Any], end_sql: str) -> None:
    for kind, index, sql in (
        ("on-run-start", 0, "create table if not exists runs (id int)"),
        ("on-run-end", 0, end_sql),
    ):
        uid = f"operation.{P}.{P}-{kind}-{index}"
        data["nodes"][uid] = {
            "unique_id": uid,
            "resource_type": "operation",
            "package_name": P,
            "name": f"{P}-{kind}-{index}",
            "tags": [kind],
            "raw_code": sql,
            "depends_on": {"macros": [], "nodes": []},
            "config": {},
            "fqn": [P, "hooks", f"{P}-{kind}-{index}"],
        }


def test_safe_project_hooks_run_once_in_their_own_first_and_last_tasks(
    example_project: DbtProject, tmp_path: Path
) -> None:
    manifest = _edited(example_project, tmp_path, lambda d: _with_hooks(d, "insert into runs values (1)"))
    dag, group = _dag(example_project, manifest)
    assert dag.get_task("models.on_run_start").downstream_task_ids >= {"models.customers", "models.orders"}
    end = dag.get_task("models.on_run_end")
    assert end.trigger_rule == "all_done" and len(end.upstream_task_ids) == len(dag.tasks) - 2
    assert all(task.run_hooks is False for task in group.model_tasks.values())
    _, per_task = _dag(example_project, manifest, run_hooks="per_task")
    assert all(task.run_hooks is True for task in per_task.model_tasks.values())


def test_an_on_run_end_hook_reading_results_stays_in_every_task(example_project: DbtProject, tmp_path: Path) -> None:
    manifest = _edited(example_project, tmp_path, lambda d: _with_hooks(d, "{{ log(results | length) }}"))
    dag, group = _dag(example_project, manifest)
    assert "models.on_run_start" in dag.task_dict and "models.on_run_end" not in dag.task_dict
    assert all(task.run_hooks == ("on-run-end",) for task in group.model_tasks.values())


def test_after_all_puts_a_test_of_two_unrelated_nodes_after_every_node(
    example_project: DbtProject, tmp_path: Path
) -> None:
    def edit(data: dict[str, Any]) -> None:
        # A relationships-like test between two staging models neither of which is upstream of the other.
        test = dict(next(node for uid, node in data["nodes"].items() if uid.startswith(f"test.{P}.unique_stg_pay")))
        test.update(
            unique_id=f"test.{P}.payments_match_customers",
            name="payments_match_customers",
            depends_on={"nodes": [f"model.{P}.stg_payments", f"model.{P}.stg_customers"], "macros": []},
            attached_node=None,
        )
        data["nodes"][test["unique_id"]] = test

    manifest = _edited(example_project, tmp_path, edit)
    for mode, upstream in (("after_all", {"models.customer_orders"}), ("after_each", None)):
        dag, _ = _dag(example_project, manifest, tests=mode)
        loose = dag.get_task("models.test__payments_match_customers")
        if upstream is None:  # after_each: after both of the nodes it reads
            upstream = {"models.stg_payments", "models.stg_customers"}
        assert set(loose.upstream_task_ids) == upstream, mode


def test_a_target_templated_on_a_variable_names_that_targets_assets(
    example_project: DbtProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environments pattern (docs/environments.md): the Variable is read when the DAG file is parsed."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    outputs = {name: {"type": "duckdb", "path": f"{name}.duckdb", "threads": 1} for name in ("dev", "prod")}
    (profiles / "profiles.yml").write_text(json.dumps({P: {"target": "dev", "outputs": outputs}}))

    def outlets(target: str) -> list[str]:
        with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
            DbtIdentityTaskGroup(
                "models",
                project_dir=example_project.project_dir,
                manifest_path=example_project.manifest_path,
                identity_conn_id="idbt_{{ var.value.get('idbt_environment', 'dev') }}",
                profiles_dir=profiles,
                operator_kwargs={"target": target},
            )
        return [asset.uri for asset in dag.get_task("models.order_totals").outlets]

    variable = "{{ var.value.get('idbt_environment', 'dev') }}"
    assert outlets(variable) == [f"duckdb://dev.duckdb/{P}/main/order_totals"]
    monkeypatch.setenv("AIRFLOW_VAR_IDBT_ENVIRONMENT", "prod")
    assert outlets(variable) == [f"duckdb://prod.duckdb/{P}/main/order_totals"]
    # Known only when a run renders it: the tasks are built, without Assets.
    assert outlets("{{ 'prod' if ds else 'dev' }}") == []
