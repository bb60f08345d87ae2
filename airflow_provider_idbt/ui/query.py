"""The Model runs pages' addresses: query strings in (a RunFilter, or a message saying what is wrong), links out.

Pure: no Airflow import, so the extra link and the tests use the same paths the app serves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote, urlencode

from airflow_provider_idbt.ui import model_runs
from airflow_provider_idbt.ui.model_runs import RunFilter

# Where the plugin mounts the app inside the api-server, and the app's own paths.
URL_PREFIX = "/idbt"
LIST_PATH = "/model-runs"
CSV_PATH = "/model-runs/export.csv"
JSON_PATH = "/model-runs/export.json"
TI_PATH = "/model-runs/ti/{dag_id}/{run_id}/{task_id}"
# The list for one DAG or one DAG run, named in the path (the UI's DAG and DAG run tabs).
DAG_LIST_PATH = "/model-runs/dags/{dag_id}"
DAG_RUN_LIST_PATH = "/model-runs/dags/{dag_id}/runs/{run_id}"

# Query parameters a filter reads, in the order the pages write them.
FILTER_PARAMS = ("dag_id", "run_id", "task_id", "status", "identity", "since", "until")

# Airflow's UI leaves a placeholder it has no value for as it is: a task instance tab of an unmapped task gets
# the literal "{MAP_INDEX}".
_UNMAPPED = {"", "-1", "{MAP_INDEX}"}
_INTEGER = re.compile(r"-?\d+")


class FilterError(ValueError):
    """A query parameter of the Model runs pages that cannot be read; the message says which and how to fix it."""


def parse_filter(params: Mapping[str, str]) -> RunFilter:
    """The filter a page's query string asks for (model_runs.parse_filter, which `idbt audit` uses too); an empty
    value is no filter on that field, and parameters that are no filter (``map_index`` of a tab) are left out."""
    try:
        return model_runs.parse_filter({name: params[name] for name in FILTER_PARAMS if name in params})
    except ValueError as exc:
        raise FilterError(str(exc)) from None


def form_values(run_filter: RunFilter, params: Mapping[str, str]) -> dict[str, str]:
    """What the filter form shows: the text the user typed, or the DAG and run a tab's path named."""
    values = {name: params.get(name, "") for name in FILTER_PARAMS}
    for name in ("dag_id", "run_id"):
        if not values[name] and getattr(run_filter, name):
            values[name] = str(getattr(run_filter, name))
    return values


def parse_map_index(value: str | None) -> int:
    """A task instance's map index from the query string: -1 for an unmapped task."""
    text = (value or "").strip()
    if text in _UNMAPPED:
        return -1
    if not _INTEGER.fullmatch(text):
        raise FilterError(f"`map_index` is {text!r}; give the mapped task's index (0, 1, ...) or -1 for none")
    return int(text)


def filter_query(run_filter: RunFilter) -> str:
    """The query string (without ``?``) that asks for ``run_filter`` again: the export links of a page."""
    pairs: list[tuple[str, str]] = []
    for name in FILTER_PARAMS:
        value = getattr(run_filter, name)
        if value is None:
            continue
        pairs.append((name, value.isoformat() if isinstance(value, datetime) else str(value)))
    return urlencode(pairs)


def ti_page_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The per-task-instance page, relative to the app (prefix it with the app's root)."""
    path = TI_PATH.format(dag_id=_segment(dag_id), run_id=_segment(run_id), task_id=_segment(task_id))
    return f"{path}?map_index={map_index}" if map_index >= 0 else path


def airflow_task_instance_path(
    dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int | None = None
) -> str:
    """Airflow's own page of a task instance (its log tab first), relative to Airflow's root."""
    path = f"/dags/{_segment(dag_id)}/runs/{_segment(run_id)}/tasks/{_segment(task_id)}"
    if map_index >= 0:
        path += f"/mapped/{map_index}"
    return f"{path}?try_number={try_number}" if try_number is not None else path


def airflow_dag_run_path(dag_id: str, run_id: str) -> str:
    """Airflow's own page of a DAG run, relative to Airflow's root."""
    return f"/dags/{_segment(dag_id)}/runs/{_segment(run_id)}"


def airflow_dag_path(dag_id: str) -> str:
    """Airflow's own page of a DAG, relative to Airflow's root."""
    return f"/dags/{_segment(dag_id)}"


def _segment(value: str) -> str:
    return quote(value, safe="")
