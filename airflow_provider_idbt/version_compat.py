"""The one place that imports Airflow names whose home differs between Airflow 3.1, 3.2 and 3.3."""

from __future__ import annotations

from typing import Any

from airflow import __version__ as _AIRFLOW_VERSION
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_AIRFLOW_VERSION).base_version)
AIRFLOW_V_3_2_PLUS = AIRFLOW_VERSION >= Version("3.2.0")

from airflow.listeners import hookimpl  # noqa: E402
from airflow.plugins_manager import AirflowPlugin  # noqa: E402
from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, TaskGroup  # noqa: E402

try:  # Airflow 3.2+: the task SDK owns the task-facing exceptions.
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
    )

try:  # Airflow 3.1+: masks in the task process and tells the supervisor to mask too.
    from airflow.sdk.log import mask_secret as _mask_secret
except ImportError:  # pragma: no cover - older task SDKs
    from airflow.sdk.execution_time.secrets_masker import mask_secret as _mask_secret  # type: ignore


def mask_secret(secret: str, name: str | None = None) -> None:
    """Register a secret with Airflow's masker so it is redacted from task logs and rendered fields."""
    _mask_secret(secret, name)


Context = dict[str, Any]

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_2_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowPlugin",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "Context",
    "TaskGroup",
    "hookimpl",
    "mask_secret",
]
