"""airflow-provider-idbt: identity-aware dbt runs for Apache Airflow.

Public names are imported lazily so that importing the package (or `get_provider_info`) stays cheap
at DAG-parse time and never pulls in dbt or a cloud SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "DbtIdentityHooksOperator",
    "DbtIdentityOperator",
    "DbtIdentityTaskGroup",
    "DbtIdentityTestOperator",
    "OidcTokenHook",
    "__version__",
]

_LAZY = {
    "DbtIdentityHooksOperator": "airflow_provider_idbt.operators.dbt_hooks",
    "DbtIdentityOperator": "airflow_provider_idbt.operators.dbt_identity",
    "DbtIdentityTaskGroup": "airflow_provider_idbt.task_group",
    "DbtIdentityTestOperator": "airflow_provider_idbt.operators.dbt_tests",
    "OidcTokenHook": "airflow_provider_idbt.hooks.oidc",
}

if TYPE_CHECKING:
    from airflow_provider_idbt.hooks.oidc import OidcTokenHook
    from airflow_provider_idbt.operators.dbt_hooks import DbtIdentityHooksOperator
    from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator
    from airflow_provider_idbt.operators.dbt_tests import DbtIdentityTestOperator
    from airflow_provider_idbt.task_group import DbtIdentityTaskGroup


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_provider_idbt' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
