"""select_nodes(): dbt's selection grammar and every method, on small hand-built node records.

Parity with dbt itself on real projects is tests/integration/test_selection_vs_dbt_ls.py; these pin the rules
one at a time, including the corners dbt's own code decides (versions, wildcards, indirect test selection).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_idbt.dbt.select_spec import UNSUPPORTED
from airflow_provider_idbt.dbt.selection import NodeGraph, select_nodes
from airflow_provider_idbt.errors import ConfigurationError, SelectionError

P = "shop"


def _node(uid: str, *, deps: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    parts = uid.split(".")
    kind, package = parts[0], parts[1]
    name = parts[-1] if kind == "source" else parts[2]
    node: dict[str, Any] = {
        "unique_id": uid,
        "resource_type": kind,
        "name": name,
        "package_name": package,
        "path": f"{name}.sql",
        "original_file_path": f"models/{name}.sql",
        "fqn": [package, name],
        "tags": [],
        "config": {"enabled": True, "materialized": "view"},
        "meta": {},
        "depends_on": list(deps),
        "version": None,
        "latest_version": None,
        "access": None,
        "group": None,
    }
    if kind == "test":
        node.update(test_name=None, test_namespace=None, attached_node=None, column_name=None)
    node.update(fields)
    return node


def _project() -> dict[str, dict[str, Any]]:
    """raw.orders -> stg_orders -> orders -> revenue; stg_customers -> orders; tests on them; a package model."""
    nodes = [
        _node(
            "source.shop.raw.orders",
            fqn=["shop", "raw", "orders"],
            source_name="raw",
            original_file_path="models/staging/sources.yml",
            tags=["landing"],
        ),
        _node(
            "model.shop.stg_orders",
            deps=("source.shop.raw.orders",),
            fqn=["shop", "staging", "stg_orders"],
            original_file_path="models/staging/stg_orders.sql",
            patch_path="shop://models/staging/schema.yml",
            tags=["staging"],
        ),
        _node(
            "model.shop.stg_customers",
            fqn=["shop", "staging", "stg_customers"],
            original_file_path="models/staging/stg_customers.py",
            tags=["staging", "pii"],
            config={"materialized": "table", "meta": {"owner": "crm", "tier": 1}, "pii": True},
        ),
        _node(
            "model.shop.orders.v1",
            deps=("model.shop.stg_orders",),
            fqn=["shop", "marts", "orders", "v1"],
            name="orders",
            version="1",
            latest_version="2",
            access="public",
            original_file_path="models/marts/orders_v1.sql",
        ),
        _node(
            "model.shop.orders.v2",
            deps=("model.shop.stg_orders", "model.shop.stg_customers"),
            fqn=["shop", "marts", "orders", "v2"],
            name="orders",
            version="2",
            latest_version="2",
            access="protected",
            original_file_path="models/marts/orders_v2.sql",
            config={"materialized": "table", "group": "finance", "tags": ["nightly", "core"]},
        ),
        _node(
            "model.shop.orders.v10",
            deps=("model.shop.stg_orders",),
            fqn=["shop", "marts", "orders", "v10"],
            name="orders",
            version="10",
            latest_version="2",
            original_file_path="models/marts/orders_v10.sql",
        ),
        _node(
            "model.shop.revenue",
            deps=("model.shop.orders.v2",),
            fqn=["shop", "marts", "finance", "revenue"],
            access="private",
            original_file_path="models/marts/finance/revenue.sql",
            config={"materialized": "incremental", "group": "finance"},
        ),
        _node(
            "test.shop.not_null_stg_orders_id.1",
            deps=("model.shop.stg_orders",),
            test_name="not_null",
            original_file_path="models/staging/schema.yml",
            config={"severity": "warn", "tags": ["quality"]},
        ),
        _node(
            "test.shop.relationships_orders_customers.2",
            deps=("model.shop.stg_orders", "model.shop.stg_customers"),
            test_name="relationships",
            original_file_path="models/staging/schema.yml",
            config={"severity": "ERROR"},
        ),
        _node(
            "test.shop.revenue_matches_orders",
            deps=("model.shop.revenue", "model.shop.orders.v2"),
            original_file_path="tests/revenue_matches_orders.sql",
        ),
        _node("seed.shop.countries", original_file_path="seeds/countries.csv", tags=["reference"]),
        _node(
            "model.helpers.calendar",
            fqn=["helpers", "util", "calendar"],
            original_file_path="models/util/calendar.sql",
            tags=["helper"],
        ),
        _node("analysis.shop.daily", deps=("model.shop.revenue",), original_file_path="analyses/daily.sql"),
    ]
    return {node["unique_id"]: node for node in nodes}


NODES = _project()


def ids(select: Any = None, **kwargs: Any) -> set[str]:
    """The selection as short names: ``model.shop.stg_orders`` -> ``stg_orders``, versions kept (``orders.v2``)."""
    kwargs.setdefault("project_name", P)
    found = select_nodes(kwargs.pop("nodes", NODES), select=select, **kwargs)
    return {uid.split(".", 2)[2] for uid in found}


TESTS = {"not_null_stg_orders_id.1", "relationships_orders_customers.2", "revenue_matches_orders"}
STAGING_FOLDER = {
    "raw.orders",
    "stg_orders",
    "stg_customers",
    "not_null_stg_orders_id.1",
    "relationships_orders_customers.2",
}


def test_nothing_given_selects_every_node() -> None:
    assert select_nodes(NODES) == frozenset(NODES)
    assert select_nodes(NODES, select=[]) == select_nodes(NODES, select="  ") == frozenset(NODES)


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("stg_orders", {"stg_orders", "not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("staging", {"stg_orders", "stg_customers", "not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("shop.marts.finance", {"revenue", "revenue_matches_orders"}),
        ("marts.finance.revenue", {"revenue", "revenue_matches_orders"}),
        ("helpers.util", {"calendar"}),
        ("util", {"calendar"}),  # fqn without its package: dbt matches across packages
        ("stg_*", {"stg_orders", "stg_customers", "not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("*omers", {"stg_customers", "relationships_orders_customers.2"}),
        ("shop.staging.stg_?rders", {"stg_orders", "not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("raw", set()),  # the fqn method never selects sources
    ],
)
def test_fqn(select: str, expected: set[str]) -> None:
    assert ids(select) == expected


def test_a_versioned_model_by_name_by_version_and_the_bare_wildcard() -> None:
    versions = {"orders.v1", "orders.v2", "orders.v10"}
    assert ids("orders", indirect_selection="empty") == versions
    assert ids("orders.v1", indirect_selection="empty") == {"orders.v1"}
    assert ids("orders_v2", indirect_selection="empty") == {"orders.v2"}
    assert ids("ord*", indirect_selection="empty") == versions
    assert ids("fqn:shop.marts.orders.v1") == {"orders.v1"}


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("tag:staging", {"stg_orders", "stg_customers"}),
        ("tag:stag*", {"stg_orders", "stg_customers"}),
        ("tag:landing", {"raw.orders"}),  # sources have tags too
        ("tag:Staging", set()),  # case-sensitive, as dbt on POSIX
        ("group:finance", {"orders.v2", "revenue"}),
        ("group:fin*", {"orders.v2", "revenue"}),
        ("access:public", {"orders.v1"}),
        ("access:private", {"revenue"}),
        ("access:pub*", set()),  # access compares exactly
        ("resource_type:seed", {"countries"}),
        ("resource_type:analysis", {"daily"}),
        ("resource_type:exposure", set()),
        ("package:helpers", {"calendar"}),
        ("package:this", {uid.split(".", 2)[2] for uid in NODES if NODES[uid]["package_name"] == P}),
        ("package:h*", {"calendar"}),
        ("file:stg_orders.sql", {"stg_orders"}),
        ("file:stg_customers", {"stg_customers"}),  # the stem matches too
        ("stg_customers.py", {"stg_customers"}),  # a bare word ending in .py is a file
        ("file:schema.yml", {"not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("test_name:not_null", {"not_null_stg_orders_id.1"}),
        ("test_name:rel*", {"relationships_orders_customers.2"}),
        ("test_type:singular", {"revenue_matches_orders"}),
        ("test_type:generic", {"not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("test_type:schema", {"not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("test_type:data", TESTS),
        ("test_type:sing", {"revenue_matches_orders"}),  # dbt tests a substring of "singular"
        ("test_type:unit", set()),
        ("version:latest", {"orders.v2"}),
        ("version:old", {"orders.v1"}),
        ("version:prerelease", {"orders.v10"}),  # numeric order: 10 > 2
        ("version:none", {"stg_orders", "stg_customers", "revenue", "calendar"}),
    ],
)
def test_methods(select: str, expected: set[str]) -> None:
    assert ids(select, indirect_selection="empty") == expected


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("source:raw", {"raw.orders"}),
        ("source:raw.orders", {"raw.orders"}),
        ("source:raw.ord*", {"raw.orders"}),
        ("source:shop.raw.orders", {"raw.orders"}),
        ("source:helpers.raw.orders", set()),
        ("source:raw.customers", set()),
        (
            "source:raw+",
            {"raw.orders", "stg_orders", "orders.v1", "orders.v2", "orders.v10", "revenue", "daily", *TESTS},
        ),
    ],
)
def test_source(select: str, expected: set[str]) -> None:
    assert ids(select, indirect_selection="empty") == expected


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("config.materialized:table", {"stg_customers", "orders.v2"}),
        ("config.materialized:incre*", set()),  # config values compare exactly, no wildcards
        ("config.meta.owner:crm", {"stg_customers"}),
        ("config.meta.tier:1", set()),  # "1" is not 1, as in dbt
        ("config.pii:true", {"stg_customers"}),
        ("config.pii:TRUE", {"stg_customers"}),
        ("config.pii:false", set()),
        ("config.tags:nightly", {"orders.v2"}),  # a list matches by membership
        ("config.severity:WARN", {"not_null_stg_orders_id.1"}),  # severity compares case-insensitively
        ("config.severity:error", {"relationships_orders_customers.2"}),
        ("config.group:finance", {"orders.v2", "revenue"}),
        ("config.nosuchkey:x", set()),
        ("config.meta.owner.name:x", set()),  # descending into a string matches nothing
    ],
)
def test_config(select: str, expected: set[str]) -> None:
    assert ids(select, indirect_selection="empty") == expected


def test_config_values_from_yaml_compare_as_dbt_does() -> None:
    selectors = {
        "tier": {"name": "tier", "definition": {"method": "config.meta.tier", "value": 1}},
        "pii": {"name": "pii", "definition": {"method": "config.pii", "value": True}},
    }
    assert ids(selector="tier", selectors=selectors) == {"stg_customers", "relationships_orders_customers.2"}
    assert ids(selector="pii", selectors=selectors, indirect_selection="empty") == {"stg_customers"}


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("path:models/staging", STAGING_FOLDER),
        ("models/staging", STAGING_FOLDER),  # a bare word with a / is a path
        ("path:models/staging/", STAGING_FOLDER),
        ("path:./models/marts/finance", {"revenue"}),
        ("path:models/marts/orders_v1.sql", {"orders.v1"}),
        ("path:models/staging/schema.yml", {"stg_orders", *TESTS - {"revenue_matches_orders"}}),  # patch_path
        ("path:models/*/*.py", {"stg_customers"}),
        ("path:models/**/*.sql", {"stg_orders", "orders.v1", "orders.v2", "orders.v10", "revenue"}),
        ("path:models/m*", {"orders.v1", "orders.v2", "orders.v10", "revenue"}),
        ("path:models/**", {uid.split(".", 2)[2] for uid in NODES if "models/" in NODES[uid]["original_file_path"]}),
        ("path:Models", set()),
        ("path:models/util", set()),  # the package's folder is not in the root project, where dbt looks
        ("path:.", {uid.split(".", 2)[2] for uid in NODES}),
    ],
)
def test_path(select: str, expected: set[str]) -> None:
    assert ids(select, indirect_selection="empty") == expected


def test_path_without_a_project_name_takes_package_paths_too() -> None:
    assert ids("path:models/util", project_name=None) == {"calendar"}


@pytest.mark.parametrize("value", ["", "/abs/models", "../other/models", "models/a**"])
def test_bad_paths_are_refused(value: str) -> None:
    with pytest.raises(SelectionError, match="path"):
        ids(f"path:{value}")


RELATIONSHIPS, NOT_NULL, REVENUE_TEST = (
    "relationships_orders_customers.2",
    "not_null_stg_orders_id.1",
    "revenue_matches_orders",
)


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("+orders.v2", {"raw.orders", "stg_orders", "stg_customers", "orders.v2"}),
        ("1+revenue", {"orders.v2", "revenue"}),
        ("2+revenue", {"stg_orders", "stg_customers", "orders.v2", "revenue"}),
        ("0+revenue", {"revenue"}),
        # tests are children in the graph: `+` reaches them whatever the indirect selection
        ("stg_customers+", {"stg_customers", "orders.v2", RELATIONSHIPS, "revenue", REVENUE_TEST, "daily"}),
        ("stg_orders+1", {"stg_orders", "orders.v1", "orders.v2", "orders.v10", NOT_NULL, RELATIONSHIPS}),
        ("source:raw+1", {"raw.orders", "stg_orders"}),
        (
            "@stg_customers",
            {"stg_customers", "orders.v2", RELATIONSHIPS, "revenue", REVENUE_TEST, "daily", "stg_orders", "raw.orders"},
        ),
    ],
)
def test_graph_operators(select: str, expected: set[str]) -> None:
    assert ids(select, indirect_selection="empty") == expected


def test_union_intersection_several_items_and_exclude() -> None:
    assert ids("stg_orders stg_customers", indirect_selection="empty") == {"stg_orders", "stg_customers"}
    assert ids(["stg_orders", "tag:pii"], indirect_selection="empty") == {"stg_orders", "stg_customers"}
    assert ids("tag:staging,config.materialized:table", indirect_selection="empty") == {"stg_customers"}
    assert ids("+revenue,tag:staging", indirect_selection="empty") == {"stg_orders", "stg_customers"}
    assert ids("tag:staging", exclude="stg_orders") == {"stg_customers"}  # its tests go with it, eagerly
    everything_but = ids(exclude="resource_type:test resource_type:source")
    assert everything_but == {uid.split(".", 2)[2] for uid in NODES} - TESTS - {"raw.orders"}


def test_indirect_selection_modes() -> None:
    relationships = "relationships_orders_customers.2"
    assert ids("stg_orders") == {"stg_orders", "not_null_stg_orders_id.1", relationships}  # eager: any parent
    assert ids("stg_orders", indirect_selection="cautious") == {"stg_orders", "not_null_stg_orders_id.1"}
    assert ids("stg_orders", indirect_selection="empty") == {"stg_orders"}
    # cautious needs every parent: the union of two words brings the relationships test back
    assert relationships in ids("stg_orders stg_customers", indirect_selection="cautious")
    # buildable also takes a test whose other parents are upstream of the selection
    assert ids("revenue", indirect_selection="cautious") == {"revenue"}
    assert ids("revenue", indirect_selection="buildable") == {"revenue", "revenue_matches_orders"}
    assert ids("stg_customers", indirect_selection="buildable") == {"stg_customers"}


def test_a_shared_graph_answers_the_same() -> None:
    graph = NodeGraph.build(NODES)
    for select in ("@stg_customers", "+revenue", "tag:staging,stg_orders+"):
        assert select_nodes(NODES, select=select, graph=graph) == select_nodes(NODES, select=select)
    assert graph.children["model.shop.orders.v2"] == ("model.shop.revenue", "test.shop.revenue_matches_orders")


def test_edges_to_nodes_outside_the_records_are_dropped() -> None:
    nodes = {"model.p.a": _node("model.p.a", deps=("function.p.f", "model.p.disabled"))}
    assert select_nodes(nodes, select="+a") == {"model.p.a"}


SELECTORS: dict[str, Any] = {
    "staging": {"name": "staging", "definition": "tag:staging"},
    # the manifest's normalised form of "2+revenue": dbt writes depths as strings
    "up2": {"name": "up2", "definition": {"parents": True, "parents_depth": "2", "method": "fqn", "value": "revenue"}},
    "marts_but_finance": {
        "name": "marts_but_finance",
        "definition": {"union": [{"method": "fqn", "value": "marts"}, {"exclude": ["group:finance"]}]},
    },
    "nested": {
        "name": "nested",
        "definition": {
            "intersection": [
                {"value": "staging", "method": "selector"},  # not inlined: read by name
                {"tag": "pii"},
            ]
        },
    },
    "cautious_orders": {
        "name": "cautious_orders",
        "definition": {"method": "fqn", "value": "stg_orders", "indirect_selection": "cautious"},
    },
    "children_but": {
        "name": "children_but",
        "definition": {
            "method": "tag",
            "value": "staging",
            "children": True,
            "children_depth": 1,
            "exclude": ["resource_type:test", "orders.v10"],
        },
    },
    "at_customers": {
        "name": "at_customers",
        "definition": {"method": "fqn", "value": "stg_customers", "childrens_parents": True},
    },
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("staging", {"stg_orders", "stg_customers", "not_null_stg_orders_id.1", "relationships_orders_customers.2"}),
        ("up2", {"stg_orders", "stg_customers", "orders.v2", "revenue", "revenue_matches_orders", *TESTS}),
        ("marts_but_finance", {"orders.v1", "orders.v10"}),
        ("nested", {"stg_customers", "relationships_orders_customers.2"}),
        ("cautious_orders", {"stg_orders", "not_null_stg_orders_id.1"}),
        ("children_but", {"stg_orders", "stg_customers", "orders.v1", "orders.v2"}),
        ("at_customers", ids("@stg_customers")),
    ],
)
def test_yaml_selectors(selector: str, expected: set[str]) -> None:
    assert ids(selector=selector, selectors=SELECTORS) == expected


def test_the_selectors_indirect_selection_beats_the_argument() -> None:
    assert ids(selector="cautious_orders", selectors=SELECTORS, indirect_selection="eager") == {
        "stg_orders",
        "not_null_stg_orders_id.1",
    }
    assert ids(selector="staging", selectors=SELECTORS, indirect_selection="empty") == {"stg_orders", "stg_customers"}


def test_the_default_selector_applies_only_when_nothing_is_selected() -> None:
    selectors = {**SELECTORS, "seeds": {"name": "seeds", "default": True, "definition": "resource_type:seed"}}
    assert ids(selectors=selectors) == {"countries"}
    assert ids("stg_orders", selectors=selectors, indirect_selection="empty") == {"stg_orders"}
    assert ids(exclude="resource_type:test", selectors=selectors) == {uid.split(".", 2)[2] for uid in NODES} - TESTS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"select": "nosuch:x"}, r"'nosuch:x'.*not a dbt selection method.*fqn"),
        ({"select": "tag:a,"}, "empty side of a comma"),
        ({"select": ",tag:a"}, "empty side of a comma"),
        ({"select": "@stg_orders+"}, "cannot be combined"),
        ({"select": "config:table"}, "config.materialized"),
        ({"select": "source:a.b.c.d"}, "'source:a.b.c.d'.*too many dots"),
        ({"select": "resource_type:table"}, "'resource_type:table'.*not a dbt resource type"),
        ({"select": "version:newest"}, "'version:newest'"),
        ({"select": "test_type:xyz"}, "'test_type:xyz'"),
        ({"select": "package:this", "project_name": None}, "project_name"),
        ({"select": ["a", 3]}, "select= takes strings"),
        ({"select": "a", "indirect_selection": "lazy"}, "'lazy'.*eager"),
        ({"selector": "nope", "selectors": SELECTORS}, r"'nope' is not defined.*known selectors: at_customers, "),
        ({"selector": "nope"}, "no selectors.yml"),
        ({"selector": "staging", "selectors": SELECTORS, "select": "a"}, "cannot be combined with select="),
    ],
)
def test_errors_say_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("project_name", P)
    with pytest.raises(SelectionError, match=message) as caught:
        select_nodes(NODES, **kwargs)
    assert isinstance(caught.value, ConfigurationError)
    assert not caught.value.retryable


@pytest.mark.parametrize("method", sorted(UNSUPPORTED))
def test_methods_needing_artifacts_or_unindexed_types_are_refused(method: str) -> None:
    with pytest.raises(SelectionError, match=f"'\\+{method}:x'.*`{method}:` method"):
        select_nodes(NODES, select=f"+{method}:x")


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"union": ["a"], "description": "x"}, "single `union` or `intersection` key"),
        ({"union": [{"exclude": ["a"]}, {"exclude": ["b"]}]}, "at most one `exclude`"),
        ({"union": "a b"}, "`union` must be a list"),
        ({"exclude": ["a"]}, "inside a union or intersection"),
        ({"method": "tag", "parents": True}, "expected one key"),
        ({"method": "fqn", "value": "a", "parents": True, "parents_depth": "two"}, "'two' is not a whole number"),
        ({"method": "fqn", "value": "a", "indirect_selection": "lazy"}, "'lazy'"),
        ({"method": "selector", "value": "loop"}, "refers to itself"),
        ({"method": "selector", "value": "missing"}, "'missing' is not defined"),
        ("tag:a\ntag:b", "not a valid dbt selection criterion"),
        (["a"], "expected a union, an intersection"),
    ],
)
def test_bad_yaml_selectors_are_refused(definition: Any, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        select_nodes(NODES, selector="loop", selectors={"loop": {"name": "loop", "definition": definition}})


def test_selecting_nothing_is_not_an_error() -> None:
    assert select_nodes(NODES, select="nosuchmodel") == frozenset()
    assert select_nodes({}, select="+a+") == frozenset()
