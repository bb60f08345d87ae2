"""How the core's typed errors fail an Airflow task: permanent ones without retry, transient ones retried."""

from __future__ import annotations

from airflow_provider_idbt.errors import IdbtError
from airflow_provider_idbt.version_compat import AirflowException, AirflowFailException


def to_airflow_error(error: IdbtError) -> AirflowException:
    """Permanent errors fail the task without retry; transient ones leave retrying to Airflow."""
    if error.retryable:
        return AirflowException(f"{type(error).__name__}: {error}")
    return AirflowFailException(f"{type(error).__name__}: {error}")
