"""The Model runs pages' gate: Airflow's own authentication and per-DAG authorization, or no page at all.

Airflow does not authenticate a plugin's FastAPI app. Every route of the app depends on what this module builds
from ``airflow.api_fastapi.core_api.security`` (the dependencies Airflow's own REST API uses): the signed-in user
comes from an ``Authorization: Bearer`` token or from the UI's ``_token`` session cookie, and the rows are cut to
the DAGs the auth manager says that user may read. When those names cannot be imported, building the gate fails
and the app answers every request with a 500 that says why, never with a page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

# What the user must hold on each DAG whose rows the pages show: read on the DAG and on its task instances, as for
# Airflow's own task instance list.
READ_METHOD: Final = "GET"


class AccessChecksUnavailable(RuntimeError):
    """Airflow's API access checks could not be imported, so the Model runs pages must not be served."""


@dataclass(frozen=True)
class AirflowAccess:
    """Airflow's own access checks, as FastAPI dependencies for the pages' routes.

    ``task_instances_readable`` refuses (401 anonymous or bad token, 403 not allowed) unless the user may read task
    instances: of the DAG named by the ``dag_id`` path or query parameter when there is one, of some DAG otherwise.
    ``current_user`` is the signed-in user (Airflow's ``get_user``). ``readable_dag_ids`` asks the auth manager which
    DAGs that user may read.
    """

    task_instances_readable: Callable[..., None]
    current_user: Callable[..., Any]
    _auth_manager: Callable[[], Any]

    def readable_dag_ids(self, user: Any) -> set[str]:
        """The DAG ids ``user`` may read, from Airflow's configured auth manager."""
        return set(self._auth_manager().get_authorized_dag_ids(user=user, method=READ_METHOD))


def airflow_access() -> AirflowAccess:
    """Airflow's access checks (the same names on Airflow 3.1 to 3.3), or :class:`AccessChecksUnavailable`."""
    try:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
    except ImportError as exc:
        raise AccessChecksUnavailable(
            "the Model runs view needs Airflow's API access checks (airflow.api_fastapi.core_api.security: "
            f"get_user, requires_access_dag) and could not import them: {exc}. It serves no page without them; "
            "run it inside `airflow api-server` of Airflow 3.1 or later."
        ) from exc
    return AirflowAccess(
        task_instances_readable=requires_access_dag(READ_METHOD, DagAccessEntity.TASK_INSTANCE),
        current_user=get_user,
        _auth_manager=get_auth_manager,
    )
