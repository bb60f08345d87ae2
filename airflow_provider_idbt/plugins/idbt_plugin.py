"""The provider's Airflow plugin, found through the `airflow.plugins` entry point (no plugins folder needed)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow_provider_idbt.listeners import identity_listener
from airflow_provider_idbt.version_compat import AirflowPlugin

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

URL_PREFIX = "/idbt"  # the same as airflow_provider_idbt.ui.query.URL_PREFIX, which imports more than a plugin should


class ModelRunsApp:
    """The "Model runs" FastAPI app, built on its first request.

    Every Airflow process loads the plugin (a task process for the listener), and only the api-server serves the
    app: building it here would import FastAPI, Jinja2 and Airflow's API security into each of them. When the app
    cannot be built (Airflow's access checks missing), every request gets a 500 saying why, never a page.
    """

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self._error: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None and self._error is None:
            self._build()
        if self._app is not None:
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body = f"idbt Model runs view unavailable: {self._error}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _build(self) -> None:
        try:
            from airflow_provider_idbt.ui.app import create_app

            self._app = create_app()
        except Exception as exc:  # the view stays down, the api-server stays up, and both say why
            self._error = str(exc) or type(exc).__name__
            log.exception("idbt: the Model runs view could not be built")


def _views() -> list[dict[str, Any]]:
    """Where Airflow's UI (3.1+) shows the view: the Browse menu, a DAG's, a DAG run's and a task instance's tabs.
    The UI fills the {DAG_ID}, {RUN_ID}, {TASK_ID} and {MAP_INDEX} placeholders of a tab's href (3.1 as they are,
    3.3 URL-encoded), so the DAG and the run go into the path, where a `+` of a run id stays a `+`."""
    # Relative: Airflow's UI page carries a <base href> of Airflow's base URL, so a frame's src resolves under it,
    # in a deployment served at /airflow/ as at the root (a leading / would leave the base path out).
    base = f"{URL_PREFIX.lstrip('/')}/model-runs"
    return [
        {"name": "Model runs", "href": base, "destination": "nav", "category": "browse", "url_route": "model-runs"},
        {
            "name": "Model runs",
            "href": f"{base}/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "model-runs-dag",
        },
        {
            "name": "Model runs",
            "href": f"{base}/dags/{{DAG_ID}}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "model-runs-dag-run",
        },
        {
            "name": "Model run",
            "href": f"{base}/ti/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}?map_index={{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "model-runs-task-instance",
        },
    ]


class IdbtPlugin(AirflowPlugin):
    """Registers the identity lineage listener and the "Model runs" view (the extra links are registered in
    get_provider_info)."""

    name = "idbt"
    listeners = [identity_listener]
    fastapi_apps = [{"app": ModelRunsApp(), "url_prefix": URL_PREFIX, "name": "idbt Model runs"}]
    external_views = _views()
