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
