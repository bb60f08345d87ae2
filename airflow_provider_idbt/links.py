"""Extra links shown on the provider's tasks in the Airflow UI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_provider_idbt.version_compat import BaseOperatorLink


class DbtDocsLink(BaseOperatorLink):
    """Links a model task to its page on the hosted dbt docs site (operator argument ``docs_url``)."""

    name = "dbt docs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        base = getattr(operator, "docs_url", None)
        model = getattr(operator, "model", None)
        if not base or not model or not str(model).startswith("model."):
            return ""
        return f"{str(base).rstrip('/')}/#!/model/{quote(str(model), safe='')}"


class ModelRunLink(BaseOperatorLink):
    """Links a model task's try to its row on the provider's "Model runs" page (the plugin's app in the api-server),
    which shows that task instance's every try with identity, token expiry, relations and the warehouse's message."""

    name = "Model run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow_provider_idbt.ui.query import URL_PREFIX, ti_page_path

        path = ti_page_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, getattr(ti_key, "map_index", -1))
        return f"{_airflow_root_path()}{URL_PREFIX}{path}#try-{ti_key.try_number}"


def _airflow_root_path() -> str:
    """The path of Airflow's `[api] base_url` (empty at the root): the page is on the api-server the UI came from,
    so the link stays relative to whatever host the browser used."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")
