"""The plugin's Model runs entries: the views Airflow's UI shows, the app it mounts, and its refusal to serve
without Airflow's access checks."""

from __future__ import annotations

import subprocess
import sys
import typing

from airflow.api_fastapi.core_api.datamodels.plugins import BaseDestinationLiteral, ExternalViewResponse

from airflow_provider_idbt.plugins.idbt_plugin import URL_PREFIX, IdbtPlugin, ModelRunsApp
from airflow_provider_idbt.ui import query


def test_the_views_are_what_the_installed_airflow_ui_takes() -> None:
    views = IdbtPlugin.external_views
    destinations = set(typing.get_args(BaseDestinationLiteral))
    assert {view["destination"] for view in views} == {"nav", "dag", "dag_run", "task_instance"} <= destinations
    assert len({view["url_route"] for view in views}) == len(views)  # Airflow drops a view whose route repeats
    for view in views:
        ExternalViewResponse.model_validate(view)
        assert view["href"].startswith("idbt/model-runs")  # relative to the UI's <base href>: Airflow's base URL
    by_destination = {view["destination"]: view["href"] for view in views}
    assert by_destination["dag_run"] == "idbt/model-runs/dags/{DAG_ID}/runs/{RUN_ID}"
    assert by_destination["task_instance"] == (
        f"{URL_PREFIX[1:]}{query.TI_PATH.format(dag_id='{DAG_ID}', run_id='{RUN_ID}', task_id='{TASK_ID}')}"
        "?map_index={MAP_INDEX}"
    )


def test_the_app_is_mounted_at_the_prefix_the_links_use() -> None:
    (entry,) = IdbtPlugin.fastapi_apps
    assert entry["url_prefix"] == URL_PREFIX == query.URL_PREFIX
    assert isinstance(entry["app"], ModelRunsApp)


def test_importing_the_plugin_builds_no_web_app() -> None:
    code = (
        "import sys, airflow_provider_idbt.plugins.idbt_plugin;"
        # (Airflow itself imports jinja2, so it is not on the list.)
        "print(','.join(m for m in ('fastapi', 'starlette', 'airflow_provider_idbt.ui.app',"
        " 'airflow.api_fastapi.core_api.security') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out.splitlines()[-1:] in ([], [""]), out


def test_without_airflows_access_checks_every_request_gets_a_500_that_says_why() -> None:
    """Airflow's security module made unimportable: the app serves no page, only the reason."""
    code = """
import sys
sys.modules["airflow.api_fastapi.core_api.security"] = None  # import of it raises ImportError
from starlette.testclient import TestClient
from airflow_provider_idbt.plugins.idbt_plugin import ModelRunsApp
client = TestClient(ModelRunsApp())
for path in ("/model-runs", "/model-runs/export.json", "/model-runs/ti/d/r/t"):
    response = client.get(path)
    print(response.status_code, response.text.strip())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line.startswith(("500", "200", "401", "403"))]
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("500 idbt Model runs view unavailable: ")
        assert "airflow.api_fastapi.core_api.security" in line and "api-server" in line
