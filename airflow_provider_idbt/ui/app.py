"""The "Model runs" view: a FastAPI app the provider's plugin mounts in Airflow's api-server at ``/idbt``.

Server-rendered HTML (Jinja2, every value autoescaped: identity claims are text an identity provider or a DAG author
controls) and CSV/JSON exports of the same rows. Every route depends on Airflow's own access checks (ui/access.py);
rows are cut to the DAGs the signed-in user may read. Build it with :func:`create_app`, inside the api-server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from airflow_provider_idbt.ui import query
from airflow_provider_idbt.ui.access import AirflowAccess, airflow_access
from airflow_provider_idbt.ui.model_runs import ModelRun, RunFilter, to_csv, to_json

TEMPLATES_DIR = Path(__file__).with_name("templates")
# The list page shows this many rows at most; the exports carry every row the filter matches.
PAGE_ROWS = 2000

# No script runs on these pages (they have none), so a value that slipped past escaping could not run either.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def create_app(access: AirflowAccess | None = None) -> FastAPI:
    """The Model runs app; raises :class:`~airflow_provider_idbt.ui.access.AccessChecksUnavailable` when Airflow's
    access checks cannot be imported (the plugin then answers every request with that message)."""
    gate = access or airflow_access()
    templates = _environment()
    app = FastAPI(title="idbt: Model runs", docs_url=None, redoc_url=None, openapi_url=None)
    readable = [Depends(gate.task_instances_readable)]

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        roots = _roots(request)
        html = templates.get_template(name).render(**roots, **_frame(request), **context)
        return HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)

    def rows_for(run_filter: RunFilter, user: Any, limit: int | None) -> list[ModelRun]:
        """The rows of the DAGs ``user`` may read; ``limit`` None: every match (run_store.export_rows, the rows
        `idbt audit` exports for the same filter)."""
        from airflow_provider_idbt.ui.run_store import export_rows, model_runs

        dag_ids = gate.readable_dag_ids(user)
        if limit is None:
            return export_rows(run_filter, dag_ids=dag_ids)
        return model_runs(run_filter, dag_ids=dag_ids, limit=limit)

    @app.exception_handler(query.FilterError)
    def bad_filter(request: Request, exc: query.FilterError) -> Response:
        if _wants_html(request):
            return page(request, "error.html", 400, title="Bad filter", message=str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=400, headers=_SECURITY_HEADERS)

    @app.exception_handler(HTTPException)
    def refused(request: Request, exc: HTTPException) -> Response:
        if _wants_html(request):
            title = {401: "Sign in to Airflow first", 403: "Not allowed"}.get(exc.status_code, "Error")
            return page(request, "error.html", exc.status_code, title=title, message=str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=_SECURITY_HEADERS)

    @app.get("/", include_in_schema=False, dependencies=readable)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{query.LIST_PATH}")

    @app.get(query.LIST_PATH, response_class=HTMLResponse, dependencies=readable)
    @app.get(query.DAG_LIST_PATH, response_class=HTMLResponse, dependencies=readable)
    @app.get(query.DAG_RUN_LIST_PATH, response_class=HTMLResponse, dependencies=readable)
    def model_runs_page(request: Request, user: Any = Depends(gate.current_user)) -> HTMLResponse:  # noqa: B008
        # The DAG's and DAG run's tabs name them in the path: Airflow 3.1's UI puts a run id into the href as it
        # is, and a `+` of it would read as a space in a query string.
        run_filter = query.parse_filter({**request.query_params, **request.path_params})
        rows = rows_for(run_filter, user, limit=PAGE_ROWS + 1)
        shown = rows[:PAGE_ROWS]
        return page(
            request,
            "model_runs.html",
            title="Model runs",
            rows=[_row(run, request) for run in shown],
            truncated=len(rows) > PAGE_ROWS,
            page_rows=PAGE_ROWS,
            form=query.form_values(run_filter, request.query_params),
            export_query=query.filter_query(run_filter),
            counts=_counts(shown),
            user_name=_user_name(user),
        )

    @app.get(query.CSV_PATH, dependencies=readable)
    def export_csv(request: Request, user: Any = Depends(gate.current_user)) -> Response:  # noqa: B008
        rows = rows_for(query.parse_filter(request.query_params), user, limit=None)
        return _download(to_csv(rows), "text/csv; charset=utf-8", "model-runs.csv")

    @app.get(query.JSON_PATH, dependencies=readable)
    def export_json(request: Request, user: Any = Depends(gate.current_user)) -> Response:  # noqa: B008
        rows = rows_for(query.parse_filter(request.query_params), user, limit=None)
        return _download(to_json(rows), "application/json", "model-runs.json")

    @app.get(query.TI_PATH, response_class=HTMLResponse, dependencies=readable)
    def task_instance_page(
        request: Request,
        dag_id: str,
        run_id: str,
        task_id: str,
        user: Any = Depends(gate.current_user),  # noqa: B008
    ) -> HTMLResponse:
        from airflow_provider_idbt.ui.run_store import task_instance_runs

        map_index = query.parse_map_index(request.query_params.get("map_index"))
        tries = task_instance_runs(dag_id, run_id, task_id, map_index, with_logs=True)
        roots = _roots(request)
        return page(
            request,
            "task_instance.html",
            title=f"Model run: {task_id}",
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            rows=[_row(run, request) for run in tries],
            airflow_ti_href=roots["airflow_root"]
            + query.airflow_task_instance_path(dag_id, run_id, task_id, map_index),
            dag_run_list_href=roots["app_root"]
            + query.LIST_PATH
            + "?"
            + query.filter_query(RunFilter(dag_id=dag_id, run_id=run_id)),
            user_name=_user_name(user),
        )

    return app


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,  # every template, whatever its name: claims are attacker-controlled text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    return env


def _roots(request: Request) -> dict[str, str]:
    """The app's own root (``/idbt`` behind Airflow's base path) and Airflow's root, from the mount's root path."""
    app_root = str(request.scope.get("root_path", "")).rstrip("/")
    airflow_root = app_root[: -len(query.URL_PREFIX)] if app_root.endswith(query.URL_PREFIX) else ""
    return {"app_root": app_root, "airflow_root": airflow_root}


def _row(run: ModelRun, request: Request) -> dict[str, Any]:
    """One row for the templates: the run and the links from it."""
    roots = _roots(request)
    airflow = roots["airflow_root"]
    return {
        "run": run,
        "ti_href": roots["app_root"] + query.ti_page_path(run.dag_id, run.run_id, run.task_id, run.map_index),
        "airflow_ti_href": airflow
        + query.airflow_task_instance_path(run.dag_id, run.run_id, run.task_id, run.map_index, run.try_number),
        "dag_run_href": airflow + query.airflow_dag_run_path(run.dag_id, run.run_id),
        "dag_href": airflow + query.airflow_dag_path(run.dag_id),
    }


def _frame(request: Request) -> dict[str, Any]:
    """Whether the browser loads the page into a frame (Fetch Metadata), i.e. a view of Airflow's UI: there a link
    cannot leave the frame, and Airflow 3.1's frame allows no download, so the page offers its own address."""
    own = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {"framed": request.headers.get("sec-fetch-dest") == "iframe", "own_address": own}


def _counts(rows: Sequence[ModelRun]) -> dict[str, int]:
    return {
        "rows": len(rows),
        "permission_mismatch": sum(1 for run in rows if run.highlight == "permission_mismatch"),
        "auth_failure": sum(1 for run in rows if run.highlight == "auth_failure"),
    }


def _download(body: str, media_type: str, filename: str) -> Response:
    headers = {**_SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body.encode("utf-8"), media_type=media_type, headers=headers)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _user_name(user: Any) -> str:
    getter: Callable[[], str] | None = getattr(user, "get_name", None)
    return str(getter()) if getter is not None else ""


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return (value.astimezone(UTC) if value.tzinfo else value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else ""
