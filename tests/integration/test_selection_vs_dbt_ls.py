"""select_nodes() against dbt itself: for each expression, the selected ids equal what `dbt ls` lists.

Each project is copied to a temp folder, its packages installed (`dbt deps`) and parsed by real dbt (dbt-duckdb,
dbt-postgres; no warehouse is opened), and every expression goes through ONE `dbt ls` of dbt's own programmatic
API in one dbt process per project (tests/fixtures/dbt_ls_batch.py). dbt ls also lists exposures, metrics,
semantic models, saved queries, unit tests and functions, which the node index does not hold: every ls is
restricted with `--resource-type model seed snapshot test source analysis`, the types select_nodes() returns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.dbt.selection import NodeGraph, select_nodes
from airflow_provider_idbt.dbt.slim_index import build_slim_index, read_manifest
from airflow_provider_idbt.errors import SelectionError
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, dbt_env

FIXTURE = REPO / "tests" / "fixtures" / "selection_project"
PG_PROJECT = REPO / "tests" / "fixtures" / "pg_project"
BATCH = REPO / "tests" / "fixtures" / "dbt_ls_batch.py"
RESOURCE_TYPES = ["model", "seed", "snapshot", "test", "source", "analysis"]


@dataclass(frozen=True)
class Case:
    id: str
    select: str | Sequence[str] | None = None
    exclude: str | Sequence[str] | None = None
    selector: str | None = None
    indirect: str | None = None

    def ls_args(self) -> list[str]:
        args: list[str] = []
        for flag, value in (("--select", self.select), ("--exclude", self.exclude)):
            if value is not None:
                args += [flag, *([value] if isinstance(value, str) else value)]
        if self.selector is not None:
            args += ["--selector", self.selector]
        if self.indirect is not None:
            args += ["--indirect-selection", self.indirect]
        return args


def _c(select: str | Sequence[str] | None = None, **kwargs: Any) -> Case:
    label = " ".join(f"{key}={value}" for key, value in (("select", select), *kwargs.items()) if value is not None)
    return Case(label or "everything", select, **kwargs)


SELECTION_CASES = [
    _c(),
    _c("stg_orders"),
    _c("stg_orders", indirect="cautious"),
    _c("stg_orders", indirect="buildable"),
    _c("stg_orders", indirect="empty"),
    _c("stg_customers", indirect="buildable"),
    _c("stg_orders stg_customers", indirect="cautious"),
    _c("fct_orders", indirect="buildable"),
    _c("fct_orders", indirect="cautious"),
    _c("+fct_orders"),
    _c("1+fct_orders"),
    _c("fct_orders+1"),
    _c("2+finance_margin", indirect="cautious"),
    _c("stg_orders+2"),
    _c("@stg_customers"),
    _c("@int_orders_enriched"),
    _c("tag:nightly"),
    _c("tag:stag*"),
    _c("tag:landing"),
    _c("tag:orders"),
    _c("tag:helper"),
    _c("config.materialized:table"),
    _c("config.materialized:ephemeral"),
    _c("config.meta.owner:finance_team"),
    _c("config.meta.tier:1"),
    _c("config.pii:true"),
    _c("config.pii:TRUE"),
    _c("config.severity:WARN"),
    _c("config.tags:quality"),
    _c("config.group:finance"),
    _c("config.enabled:true"),
    _c("group:core"),
    _c("group:fin*"),
    _c("access:public"),
    _c("access:protected"),
    _c("access:private"),
    _c("resource_type:seed"),
    _c("resource_type:analysis"),
    _c("resource_type:source"),
    _c("resource_type:snapshot"),
    _c("resource_type:exposure"),
    _c("package:idbt_helpers"),
    _c("package:this"),
    _c("package:idbt_*"),
    _c("source:raw"),
    _c("source:raw.orders"),
    _c("source:idbt_helpers.helper_raw.*"),
    _c("source:raw+"),
    _c("source:raw.customers+1"),
    _c("path:models/staging"),
    _c("models/marts"),
    _c("path:models/marts/core/_core.yml"),
    _c("path:models/staging/_staging.yml"),
    _c("path:models/**/*.py"),
    _c("path:models/marts/*"),
    _c("path:models/**"),
    _c("path:models"),
    _c("path:models/helpers"),
    _c("path:seeds/country_codes.csv"),
    _c("path:models/marts/fin*"),
    _c("file:fct_orders.sql"),
    _c("fct_orders.sql"),
    _c("stg_payments.py"),
    _c("file:stg_*"),
    _c("file:_staging"),
    _c("test_name:not_null"),
    _c("test_name:relation*"),
    _c("test_type:singular"),
    _c("test_type:generic"),
    _c("test_type:data"),
    _c("test_type:sing"),
    _c("version:latest"),
    _c("version:old"),
    _c("version:prerelease"),
    _c("version:none"),
    _c("dim_customers"),
    _c("dim_customers.v1"),
    _c("dim_customers_v2"),
    _c("fqn:idbt_selection.marts.core.*"),
    _c("marts.finance"),
    _c("idbt_selection.staging"),
    _c("*orders*"),
    _c("helper_*"),
    _c("idbt_helpers.helpers"),
    _c("fqn:*", indirect="empty"),
    _c("tag:nightly,config.materialized:table"),
    _c("tag:staging,resource_type:model"),
    _c("+fct_orders,tag:staging"),
    _c("+fct_orders,tag:staging", indirect="cautious"),
    _c("stg_orders,stg_customers+", indirect="cautious"),
    _c(["stg_orders", "tag:finance", "resource_type:seed"]),
    _c("tag:nightly", exclude="group:finance"),
    _c("tag:nightly +fct_orders", exclude="group:finance"),  # docs/selection.md's example
    _c(exclude="resource_type:test"),
    _c(exclude="stg_orders+"),
    _c(exclude="stg_customers", indirect="cautious"),
    _c("+fct_orders", exclude="tag:staging", indirect="cautious"),
    _c("+finance_revenue", exclude=["stg_orders", "seeds"], indirect="buildable"),
    _c("tag:nightly stg_orders", exclude="dim_customers,version:old"),
    _c(selector="nightly"),
    _c(selector="nightly", indirect="cautious"),
    _c(selector="staging_and_children"),
    _c(selector="finance_cautious"),
    _c(selector="finance_cautious", indirect="buildable"),
    _c(selector="marts_without_finance"),
    _c(selector="nightly_tables"),
    _c(selector="composed"),
    _c(selector="composed", indirect="buildable"),
    _c(selector="staging_without_tests"),
    _c(selector="marts_no_tests"),
    _c(selector="buildable_orders"),
    _c(selector="parents_of_revenue", indirect="empty"),
    _c(selector="parents_of_revenue"),
]
# dbt refuses these too; select_nodes() raises SelectionError instead of dbt's runtime error.
REFUSED_CASES = [
    _c("nosuchmethod:x"),
    _c("resource_type:nope"),
    _c("version:newest"),
    _c("test_type:xyz"),
    _c("source:a.b.c.d"),
    _c("@stg_orders+"),
    _c("state:modified"),
    _c(selector="no_such_selector"),
]
DEFAULT_SELECTOR_CASES = [
    _c(),
    _c(exclude="resource_type:test"),
    _c("tag:staging"),
    _c(selector="seeds_only"),
    _c(selector="core_and_staging", indirect="cautious"),
]
EXAMPLE_CASES = [
    _c(),
    _c("stg_orders+"),
    _c("+customer_orders", indirect="cautious"),
    _c("path:models/staging"),
    _c("resource_type:seed,config.quote_columns:false"),
    _c("config.materialized:table"),
    _c("@stg_payments", exclude="resource_type:test"),
]
PG_CASES = [
    _c(),
    _c("+customer_orders"),
    _c("source:raw+1", indirect="buildable"),
    _c("path:models/restricted"),
    _c("config.meta.idbt.required_roles:finance_admin"),
    _c("finance_summary", indirect="cautious"),
]


@dataclass(frozen=True)
class Listed:
    nodes: dict[str, dict[str, Any]]
    manifest: dict[str, Any]
    dbt: dict[str, dict[str, Any]]

    def ours(self, case: Case, graph: NodeGraph | None = None) -> list[str]:
        return sorted(
            select_nodes(
                self.nodes,
                select=case.select,
                exclude=case.exclude,
                selector=case.selector,
                selectors=self.manifest.get("selectors") or {},
                indirect_selection=case.indirect or "eager",
                project_name=self.manifest["metadata"]["project_name"],
                graph=graph,
            )
        )


def _request(project: Path, cases: list[Case], root: Path) -> tuple[Path, Path]:
    request, result = root / f"{project.name}.request.json", root / f"{project.name}.result.json"
    request.write_text(
        json.dumps(
            {
                "project_dir": str(project),
                "profiles_dir": str(project),
                "resource_types": RESOURCE_TYPES,
                "deps": (project / "packages.yml").exists(),
                "runs": [case.ls_args() for case in cases],
            }
        )
    )
    return request, result


def _listed(result: Path, project: Path, cases: list[Case], output: str) -> Listed:
    data = json.loads(result.read_text()) if result.exists() else {}
    if "runs" not in data:
        pytest.fail(f"dbt failed on {project.name}: {data.get('parse_error')}\n{output[-3000:]}")
    # The node records the task group selects from: the slim index's, built from the same manifest.
    manifest = read_manifest(project / "target" / "manifest.json")
    return Listed(
        build_slim_index(manifest)["nodes"], manifest, {case.id: run for case, run in zip(cases, data["runs"])}
    )


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Listed]:
    """Every project's `dbt ls` results: the selection project in one dbt process, the three others in a second
    one beside it (two cores here; dbt's import and parse are most of the time)."""
    root = tmp_path_factory.mktemp("selection")
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb", ".user.yml")
    main, default = root / "selection_project", root / "selection_default"
    shutil.copytree(FIXTURE, main, ignore=ignore)
    shutil.copytree(FIXTURE, default, ignore=ignore)
    shutil.copyfile(FIXTURE / "variants" / "selectors_default.yml", default / "selectors.yml")
    example, pg = root / "idbt_example", root / "idbt_pg"
    shutil.copytree(EXAMPLE_PROJECT, example, ignore=ignore)
    shutil.copytree(PG_PROJECT, pg, ignore=ignore)
    env = dbt_env({"IDBT_DUCKDB_PATH": str(example / "idbt_example.duckdb")})
    groups = [
        [("main", main, SELECTION_CASES + REFUSED_CASES)],
        [("default", default, DEFAULT_SELECTOR_CASES), ("example", example, EXAMPLE_CASES), ("pg", pg, PG_CASES)],
    ]
    running = []
    for group in groups:
        files = [_request(project, cases, root) for _, project, cases in group]
        command = [sys.executable, str(BATCH), *(str(path) for pair in files for path in pair)]
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        running.append((proc, group, files))
    found: dict[str, Listed] = {}
    for proc, group, files in running:
        output, _ = proc.communicate(timeout=600)
        for (name, project, cases), (_, result) in zip(group, files):
            found[name] = _listed(result, project, cases, output)
    return found


def _check(listed: Listed, case: Case) -> None:
    expected = listed.dbt[case.id]
    assert "ids" in expected, f"dbt refused {case.ls_args()}: {expected.get('error')}"
    assert listed.ours(case) == expected["ids"]


def test_the_selection_guide_example_lists_what_dbt_ls_lists(listed: dict[str, Listed]) -> None:
    """docs/selection.md's example, as the page shows it (tests/unit/test_docs_examples.py finds it here)."""
    manifest = listed["main"].manifest
    from airflow_provider_idbt.dbt.selection import select_nodes
    from airflow_provider_idbt.dbt.slim_index import build_slim_index

    index = build_slim_index(manifest)  # manifest: target/manifest.json, read
    nodes = index["nodes"]
    ids = select_nodes(
        nodes,                          # unique id -> node record (the slim index's "nodes")
        select="tag:nightly +fct_orders",
        exclude="group:finance",
        selectors=index["selectors"],   # the manifest's parsed selectors.yml
        indirect_selection="eager",     # eager (dbt's default), cautious, buildable, empty
        project_name="idbt_selection",  # for package:this and path: (below)
    )
    expected = listed["main"].dbt[_c("tag:nightly +fct_orders", exclude="group:finance").id]
    assert sorted(ids) == expected["ids"] and "model.idbt_selection.fct_orders" in ids


@pytest.mark.parametrize("case", SELECTION_CASES, ids=lambda case: case.id)
def test_selection_project_matches_dbt_ls(listed: dict[str, Listed], case: Case) -> None:
    _check(listed["main"], case)


@pytest.mark.parametrize("case", REFUSED_CASES, ids=lambda case: case.id)
def test_what_dbt_refuses_is_a_selection_error(listed: dict[str, Listed], case: Case) -> None:
    assert "error" in listed["main"].dbt[case.id], "dbt accepted it"
    with pytest.raises(SelectionError):
        listed["main"].ours(case)


@pytest.mark.parametrize("case", DEFAULT_SELECTOR_CASES, ids=lambda case: case.id)
def test_default_selector_matches_dbt_ls(listed: dict[str, Listed], case: Case) -> None:
    _check(listed["default"], case)


@pytest.mark.parametrize("case", EXAMPLE_CASES, ids=lambda case: case.id)
def test_example_project_matches_dbt_ls(listed: dict[str, Listed], case: Case) -> None:
    _check(listed["example"], case)


@pytest.mark.parametrize("case", PG_CASES, ids=lambda case: case.id)
def test_pg_project_matches_dbt_ls(listed: dict[str, Listed], case: Case) -> None:
    _check(listed["pg"], case)


def test_the_fixture_exercises_what_it_claims(listed: dict[str, Listed]) -> None:
    """Packages included, a disabled model left out, and the cases select different sets (none of them trivial)."""
    main = listed["main"]
    everything = main.dbt["everything"]["ids"]
    assert "model.idbt_helpers.helper_dates" in everything
    assert "model.idbt_selection.finance_legacy" not in main.nodes
    assert {node["resource_type"] for node in main.nodes.values()} == set(RESOURCE_TYPES)
    sizes = {len(run["ids"]) for run in main.dbt.values() if "ids" in run}
    assert len(sizes) > 15
    assert "test.idbt_selection.unique_stg_orders_order_id.e3b841c71a" in main.dbt["select=stg_orders"]["ids"]


def test_a_shared_graph_gives_the_same_answers(listed: dict[str, Listed]) -> None:
    main = listed["main"]
    graph = NodeGraph.build(main.nodes)
    for case in SELECTION_CASES[:20]:
        assert main.ours(case, graph) == main.dbt[case.id]["ids"]
