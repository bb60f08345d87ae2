"""The Model runs pages' addresses (ui/query.py): filters read from a query string, paths written for links."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from airflow_provider_idbt.ui import query
from airflow_provider_idbt.ui.model_runs import RunFilter

RUN_ID = "manual__2026-12-04T19:26:00+00:00"


def test_a_query_string_becomes_the_filter_and_back() -> None:
    params = {"dag_id": "shop", "run_id": RUN_ID, "status": "permission_mismatch", "since": "2026-12-01"}
    run_filter = query.parse_filter({**params, "identity": "  ", "map_index": "{MAP_INDEX}", "page": "2"})
    assert run_filter == RunFilter(
        dag_id="shop", run_id=RUN_ID, status="permission_mismatch", since=datetime(2026, 12, 1, tzinfo=UTC)
    )
    again = dict(parse_qsl(query.filter_query(run_filter)))
    assert again == {**params, "since": "2026-12-01T00:00:00+00:00"}
    assert query.parse_filter(again) == run_filter


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
    ],
)
def test_a_bad_filter_names_the_parameter(params: dict[str, str], named: str) -> None:
    with pytest.raises(query.FilterError, match=named):
        query.parse_filter(params)


@pytest.mark.parametrize(("text", "index"), [(None, -1), ("", -1), ("-1", -1), ("{MAP_INDEX}", -1), (" 3 ", 3)])
def test_map_index_of_a_tab_reads_the_ui_placeholder_as_unmapped(text: str | None, index: int) -> None:
    assert query.parse_map_index(text) == index


def test_a_map_index_that_is_no_number_is_refused() -> None:
    with pytest.raises(query.FilterError, match="map_index"):
        query.parse_map_index("first")


def test_paths_quote_each_segment() -> None:
    assert query.ti_page_path("shop", RUN_ID, "orders") == (
        "/model-runs/ti/shop/manual__2026-12-04T19%3A26%3A00%2B00%3A00/orders"
    )
    assert query.ti_page_path("shop", "r/1", "orders", 2) == "/model-runs/ti/shop/r%2F1/orders?map_index=2"
    assert query.airflow_task_instance_path("shop", "r", "orders", 4, try_number=2) == (
        "/dags/shop/runs/r/tasks/orders/mapped/4?try_number=2"
    )
    assert query.airflow_dag_run_path("a b", "r") == "/dags/a%20b/runs/r"


def test_the_form_shows_the_dag_and_run_a_tab_path_named() -> None:
    run_filter = query.parse_filter({"dag_id": "shop", "run_id": RUN_ID})
    assert query.form_values(run_filter, {"status": "failed"}) == {
        "dag_id": "shop",
        "run_id": RUN_ID,
        "task_id": "",
        "status": "failed",
        "identity": "",
        "since": "",
        "until": "",
    }
