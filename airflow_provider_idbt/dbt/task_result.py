"""The one result object a task returns (its XCom): what ran, how it went, as whom; never a secret."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.dbt.manifest import ModelSpec
from airflow_provider_idbt.dbt.results import NodeResult, RunResult
from airflow_provider_idbt.identity.token import IdentityContext

# adapter_response values are the adapter's own (`code`, `rows_affected`, `query_id`, `bytes_processed`, ...):
# scalars only, and short, so a chatty adapter cannot flood the metadata database.
_MAX_TEXT = 500


def _scalars(response: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in response.items():
        if isinstance(value, bool | int | float) or value is None:
            kept[str(key)] = value
        elif isinstance(value, str):
            kept[str(key)] = value[:_MAX_TEXT]
    return kept


def _node(node: NodeResult) -> dict[str, Any]:
    return {
        "unique_id": node.unique_id,
        "status": node.status,
        "execution_time_s": round(node.execution_time, 3),
        "failures": node.failures,
    }


def task_result(
    command: str,
    spec: ModelSpec,
    result: RunResult,
    identity: IdentityContext,
    *,
    warehouse_role: str | None,
    duration: float,
) -> dict[str, Any]:
    """JSON-ready summary of one node's dbt command: the node's own line, and its tests for build/test."""
    own = result.for_model(spec.unique_id)
    response = _scalars(own.adapter_response) if own is not None else {}
    # A task whose node is a test reports it among the tests too, where a test task's readers look for it.
    others = [node for node in result.nodes if node.unique_id != spec.unique_id or spec.resource_type == "test"]
    return {
        "command": command,
        "model": spec.unique_id,
        "resource_type": spec.resource_type,
        "relation": spec.output,
        "status": result.status,
        "node_status": own.status if own is not None else None,
        "rows_affected": response.get("rows_affected"),
        "adapter_response": response,
        "execution_time_s": round(own.execution_time, 3) if own is not None else None,
        "dbt_elapsed_s": None if result.elapsed is None else round(result.elapsed, 3),
        "duration_s": round(duration, 3),
        "tests": [_node(node) for node in others],
        "subject": identity.subject,
        "issuer": identity.issuer,
        "token_fingerprint": identity.fingerprint,
        "token_expires_at": identity.as_event()["expires_at"],
        "warehouse_role": warehouse_role,
    }
