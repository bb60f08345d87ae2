"""Which dbt command a one-node task may run on which node, and the templated full_refresh flag."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.commands import check_full_refresh, node_types, parse_flag
from airflow_provider_idbt.errors import ConfigurationError


def test_each_command_names_the_nodes_it_runs_on() -> None:
    assert node_types("run") == ("model",)
    assert node_types("seed") == ("seed",) and node_types("snapshot") == ("snapshot",)
    assert set(node_types("build")) == {"model", "seed", "snapshot"}
    assert set(node_types("test")) == {"model", "seed", "snapshot", "test"}


@pytest.mark.parametrize("command", ["compile", "run-operation", "docs", "Run", ""])
def test_other_commands_are_refused_with_the_list(command: str) -> None:
    with pytest.raises(ConfigurationError, match="use one of run, build, test, seed, snapshot"):
        node_types(command)


def test_full_refresh_only_where_dbt_takes_it() -> None:
    for command in ("run", "build", "seed"):
        check_full_refresh(command, True)
    check_full_refresh("test", False)
    with pytest.raises(ConfigurationError, match="does not apply to `dbt test`"):
        check_full_refresh("test", True)
    with pytest.raises(ConfigurationError, match="does not apply to `dbt snapshot`"):
        check_full_refresh("snapshot", True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("True", True), ("false", False), ("1", True), ("", False), ("None", False)],
)
def test_templated_flags_parse_the_way_jinja_renders_them(value: object, expected: bool) -> None:
    assert parse_flag("full_refresh", value) is expected


def test_a_flag_that_is_neither_true_nor_false_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="full_refresh must be true or false, got 'maybe'"):
        parse_flag("full_refresh", "maybe")
