"""End to end: the "Model runs" view in a real `airflow api-server` with FAB's auth manager, after real DAG runs.

Two users, each reading one DAG (tests/fixtures/ui_airflow.py): each gets its own DAG's rows only, through the
API's bearer token and through the UI's `_token` session cookie alike; anonymous requests get no data; a claim
with markup is escaped; the extra link "Model run" resolves to a page for the user who may read the DAG. Then the
same view over the scheduler run of tests/fixtures/model_runs_airflow.py (PostgreSQL warehouse): the warehouse's
own refusal highlighted, a retried task's page with both tries.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.fixtures.leak_scan import scan_files_for_secrets
from tests.fixtures.model_runs_airflow import DAG_ID as MR_DAG_ID
from tests.fixtures.model_runs_airflow import TEAM_B_DAG_ID as MR_TEAM_B_DAG_ID
from tests.fixtures.model_runs_airflow import ModelRunsAirflow, model_runs_deployment
from tests.fixtures.ui_airflow import (
    DAG_A,
    DAG_B,
    FAB_AUTH_MANAGER,
    USER_A,
    USER_B,
    XSS_SUBJECT,
    UiDeployment,
    api_token,
    create_dag_readers,
    start_ui_deployment,
)

pytestmark = pytest.mark.e2e

PAGES = ("/idbt/model-runs", "/idbt/model-runs/export.csv", "/idbt/model-runs/export.json")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiDeployment]:
    yield from start_ui_deployment(tmp_path_factory.mktemp("model_runs_ui"))


@pytest.fixture(scope="module")
def tokens(ui: UiDeployment) -> dict[str, str]:
    return {user: ui.token(user) for user in ui.passwords}


class _Rows(HTMLParser):
    """The `<tr class="model-run ...">` rows of the list page: their data attributes and classes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "tr" and "model-run" in values.get("class", "").split():
            self.rows.append(values)


def _rows(html: str) -> list[dict[str, str]]:
    parser = _Rows()
    parser.feed(html)
    return parser.rows


def _get(ui: UiDeployment, path: str, token: str | None = None, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{ui.base_url}{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def test_the_runs_left_the_rows_the_view_shows(ui: UiDeployment) -> None:
    assert ui.runs[DAG_A].state == "failed", ui.runs[DAG_A].output[-3000:]  # the mismatch fails team A's run
    assert ui.runs[DAG_B].state == "success", ui.runs[DAG_B].output[-3000:]


@pytest.mark.parametrize("path", [*PAGES, f"/idbt/model-runs/ti/{DAG_A}/x/stg_customers", "/idbt/"])
def test_anonymous_requests_are_refused_without_data(ui: UiDeployment, path: str) -> None:
    for headers in ({}, {"Accept": "text/html"}):
        response = requests.get(f"{ui.base_url}{path}", headers=headers, timeout=30, allow_redirects=False)
        assert response.status_code == 401, (path, response.status_code, response.text[:500])
        assert DAG_A not in response.text and DAG_B not in response.text


def test_a_forged_token_is_refused(ui: UiDeployment) -> None:
    response = _get(ui, "/idbt/model-runs/export.json", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")
    assert response.status_code in (401, 403)
    assert DAG_A not in response.text


@pytest.mark.parametrize("user", [USER_A, USER_B])
def test_each_user_sees_only_the_rows_of_the_dag_it_may_read(
    ui: UiDeployment, tokens: dict[str, str], user: str
) -> None:
    own = ui.dag_of[user]
    page = _get(ui, "/idbt/model-runs", tokens[user])
    assert page.status_code == 200, page.text[:1000]
    rows = _rows(page.text)
    assert rows and {row["data-dag-id"] for row in rows} == {own}
    exported = _get(ui, "/idbt/model-runs/export.json", tokens[user]).json()
    assert exported and {row["dag_id"] for row in exported} == {own}
    csv_text = _get(ui, "/idbt/model-runs/export.csv", tokens[user]).text
    assert own in csv_text and ({DAG_A, DAG_B} - {own}).pop() not in csv_text


@pytest.mark.parametrize("user", [USER_A, USER_B])
def test_another_dag_asked_for_by_name_is_forbidden(ui: UiDeployment, tokens: dict[str, str], user: str) -> None:
    other = ({DAG_A, DAG_B} - {ui.dag_of[user]}).pop()
    run_id = ui.runs[other].run_id
    for path in (
        f"/idbt/model-runs?dag_id={other}",
        f"/idbt/model-runs/export.csv?dag_id={other}",
        f"/idbt/model-runs/dags/{other}/runs/{quote(run_id, safe='')}",
        f"/idbt/model-runs/ti/{other}/{quote(run_id, safe='')}/stg_orders",
    ):
        response = _get(ui, path, tokens[user])
        assert response.status_code == 403, (path, response.status_code)
        assert run_id not in response.text


def test_the_ui_session_cookie_signs_a_page_in(ui: UiDeployment, tokens: dict[str, str]) -> None:
    """A page the UI opens (a tab's iframe, a link) carries the `_token` cookie Airflow's sign-in set."""
    response = requests.get(f"{ui.base_url}/idbt/model-runs", cookies={"_token": tokens[USER_B]}, timeout=60)
    assert response.status_code == 200
    assert {row["data-dag-id"] for row in _rows(response.text)} == {DAG_B}


def test_a_claim_with_markup_is_escaped(ui: UiDeployment, tokens: dict[str, str]) -> None:
    page = _get(ui, "/idbt/model-runs", tokens[USER_A]).text
    assert "&lt;script&gt;alert(" in page
    assert XSS_SUBJECT not in page and "<script" not in page and "<img" not in page
    assert "script-src" not in page  # no script at all: the CSP header forbids it
    csp = _get(ui, "/idbt/model-runs", tokens[USER_A]).headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp


def test_the_permission_mismatch_is_highlighted_with_its_message(ui: UiDeployment, tokens: dict[str, str]) -> None:
    page = _get(ui, f"/idbt/model-runs?dag_id={DAG_A}&status=permission_mismatch", tokens[USER_A]).text
    rows = _rows(page)
    assert [row["data-task-id"] for row in rows] == ["customer_orders"]
    assert "permission_mismatch" in rows[0]["class"].split()
    assert "analytics" in page  # the group the model requires, from the operator's message
    success = _rows(_get(ui, f"/idbt/model-runs?dag_id={DAG_A}&status=success", tokens[USER_A]).text)
    assert [row["data-task-id"] for row in success] == ["stg_customers"]
    assert "permission_mismatch" not in success[0]["class"]


def test_a_bad_filter_says_what_is_wrong(ui: UiDeployment, tokens: dict[str, str]) -> None:
    response = _get(ui, "/idbt/model-runs/export.json?since=yesterday", tokens[USER_A])
    assert response.status_code == 400
    assert "since" in response.json()["detail"] and "ISO 8601" in response.json()["detail"]


def test_the_export_is_the_rows_model_runs_gives_for_the_same_filter(ui: UiDeployment, tokens: dict[str, str]) -> None:
    """The view's export is byte for byte run_store.export_rows + to_csv/to_json, read in another process from
    the same metadata database with the user's DAGs (what `idbt audit` exports)."""
    code = (
        "import sys; from airflow_provider_idbt.ui.model_runs import RunFilter, to_csv, to_json;"
        "from airflow_provider_idbt.ui.run_store import export_rows;"
        f"rows = export_rows(RunFilter(status='success'), dag_ids={{{DAG_A!r}}});"
        "sys.stdout.write(to_csv(rows) + '\\x00' + to_json(rows))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=ui.airflow.env(), capture_output=True, timeout=120, check=True
    )
    expected_csv, expected_json = proc.stdout.split(b"\x00")  # bytes: the CSV's CRLF stays as it is
    got_csv = _get(ui, "/idbt/model-runs/export.csv?status=success", tokens[USER_A])
    got_json = _get(ui, "/idbt/model-runs/export.json?status=success", tokens[USER_A])
    assert got_csv.headers["content-type"].startswith("text/csv")
    assert got_csv.content == expected_csv and got_json.content == expected_json
    assert expected_csv.count(b"\r\n") == 2  # the header and team A's one success
    assert json.loads(got_json.content)[0]["subject"] == XSS_SUBJECT  # data, not markup: the export keeps it


@pytest.mark.parametrize("user", [USER_A, USER_B])
def test_the_model_run_extra_link_opens_that_task_instance(ui: UiDeployment, tokens: dict[str, str], user: str) -> None:
    dag_id = ui.dag_of[user]
    run_id = ui.runs[dag_id].run_id
    task_id = "stg_customers" if dag_id == DAG_A else "stg_orders"
    api = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
    links = _get(ui, api, tokens[user])
    assert links.status_code == 200, links.text[:500]
    body = links.json()
    named = body.get("extra_links", body)
    assert "dbt docs" in named
    url = named["Model run"]
    assert url.startswith("/idbt/model-runs/ti/") and url.endswith("#try-1")
    page = _get(ui, url.split("#")[0], tokens[user])
    assert page.status_code == 200
    assert 'id="try-1"' in page.text and f"model.idbt_example.{task_id}" in page.text
    other = ({USER_A, USER_B} - {user}).pop()
    assert _get(ui, url.split("#")[0], tokens[other]).status_code == 403


def test_the_pages_hold_no_secret(ui: UiDeployment, tokens: dict[str, str], tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    for user, token in tokens.items():
        for index, path in enumerate(PAGES):
            (pages / f"{user}-{index}.txt").write_text(_get(ui, path, token).text)
    assert ui.issued_tokens  # the runs asked the IdP for tokens: the scan has needles
    assert scan_files_for_secrets(pages, [*ui.client_secrets, *ui.issued_tokens]) == 2 * len(PAGES)


# -- The same view over tests/fixtures/model_runs_airflow.py's run (scheduler, PostgreSQL metadata, permissioned
# PostgreSQL warehouse): the warehouse's own refusal, a retried task's two tries, under FAB with one reader per DAG.

PG_READERS = {"carol": MR_DAG_ID, "dave": MR_TEAM_B_DAG_ID}


@dataclass
class PgUi:
    deployment: ModelRunsAirflow
    tokens: dict[str, str]

    def get(self, path: str, user: str) -> requests.Response:
        return requests.get(
            f"{self.deployment.api_url}{path}", headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=60
        )


@pytest.fixture(scope="module")
def pg_ui(pg_cluster: Any, pg_identities: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgUi]:
    root = tmp_path_factory.mktemp("model_runs_pg_ui")
    with model_runs_deployment(pg_cluster, pg_identities, root, auth_manager=FAB_AUTH_MANAGER) as deployment:
        passwords = {user: "pw-" + secrets.token_urlsafe(12) for user in PG_READERS}
        create_dag_readers(deployment.airflow, root, passwords, PG_READERS)
        tokens = {user: api_token(deployment.api_url, user, passwords[user]) for user in PG_READERS}
        yield PgUi(deployment, tokens)


def test_a_refusal_by_grants_is_highlighted_with_the_warehouses_message(pg_ui: PgUi) -> None:
    page = pg_ui.get("/idbt/model-runs?status=permission_mismatch", "carol")
    assert page.status_code == 200
    rows = {row["data-task-id"]: row for row in _rows(page.text)}
    assert set(rows) == {"intern_payments", "auditor_finance"}  # by GRANTs and by meta
    assert all("permission_mismatch" in row["class"].split() for row in rows.values())
    messages = re.findall(r'<div class="failure-message from-warehouse"[^>]*>([^<]*)</div>', page.text)
    assert len(messages) == 1 and "permission denied for table payments" in messages[0], messages


def test_the_retried_task_shows_both_tries_on_its_page(pg_ui: PgUi) -> None:
    run_id = pg_ui.deployment.run_id
    page = pg_ui.get(f"/idbt/model-runs/ti/{MR_DAG_ID}/{run_id}/flaky_orders?map_index=%7BMAP_INDEX%7D", "carol")
    assert page.status_code == 200
    assert page.text.index('id="try-2"') < page.text.index('id="try-1"')  # newest first
    first = page.text[page.text.index('id="try-1"') :]
    assert "division by zero" in first and "that try&#39;s task log" in first  # read from its log, escaped


def test_each_reader_sees_its_dags_rows_and_is_refused_the_other(pg_ui: PgUi) -> None:
    for user, dag_id in PG_READERS.items():
        exported = pg_ui.get("/idbt/model-runs/export.json", user).json()
        assert exported and {row["dag_id"] for row in exported} == {dag_id}
        other = ({MR_DAG_ID, MR_TEAM_B_DAG_ID} - {dag_id}).pop()
        assert pg_ui.get(f"/idbt/model-runs/export.csv?dag_id={other}", user).status_code == 403


def test_in_a_frame_the_page_offers_its_own_address(ui: UiDeployment, tokens: dict[str, str]) -> None:
    """Airflow's UI frames the view (no top navigation; no downloads on 3.1): the page names its own address."""
    path = f"/idbt/model-runs?dag_id={DAG_B}"
    auth = {"Authorization": f"Bearer {tokens[USER_B]}"}
    framed = requests.get(f"{ui.base_url}{path}", headers={**auth, "Sec-Fetch-Dest": "iframe"}, timeout=60).text
    alone = requests.get(f"{ui.base_url}{path}", headers={**auth, "Sec-Fetch-Dest": "document"}, timeout=60).text
    assert f"<code>{path}</code>" in framed and 'class="muted frame-hint"' in framed
    assert "frame-hint" not in alone.split("</style>")[1]
