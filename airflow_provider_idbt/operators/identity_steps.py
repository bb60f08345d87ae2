"""The identity steps of a task's try: mint its token (after the job-binding check), then check the node's needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_idbt.errors import IdbtError, PermissionMismatch
from airflow_provider_idbt.operators.task_failure import to_airflow_error

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.manifest import ModelSpec
    from airflow_provider_idbt.dbt.permissions import Access
    from airflow_provider_idbt.identity.token import FederatedToken
    from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator
    from airflow_provider_idbt.operators.run_events import ModelRunEvents


def fetch_token(task: DbtIdentityOperator, trail: ModelRunEvents, *, refresh: bool = False) -> FederatedToken:
    """The task's token from its identity connection; a refusal or failure is logged as an event first."""
    from airflow_provider_idbt.hooks import identity_hook_for
    from airflow_provider_idbt.identity.fields import checked_conn_id
    from airflow_provider_idbt.operators.job_binding import refuse_other_jobs

    try:
        hook = identity_hook_for(checked_conn_id(task.identity_conn_id))
        refuse_other_jobs(hook, trail)  # before any token is minted: fails the task without retry
        if refresh:
            return hook.refresh_token(min_ttl=task.min_token_ttl)
        return hook.get_token(min_ttl=task.min_token_ttl)
    except IdbtError as error:
        trail.auth_failure(None, task.identity_conn_id, type(error).__name__, str(error))
        raise to_airflow_error(error) from None


def preflight(task: DbtIdentityOperator, trail: ModelRunEvents, spec: ModelSpec, token: FederatedToken) -> Access:
    """Check the node's ``meta.idbt`` against the identity before any warehouse connection is opened."""
    from airflow_provider_idbt.dbt.permissions import ModelRequirements, check_access
    from airflow_provider_idbt.hooks.role_mapping import load_role_mapping

    try:
        requirements = ModelRequirements.from_meta(spec.meta, spec.unique_id)
        mapping = load_role_mapping(task.identity_conn_id)
        return check_access(
            spec.unique_id,
            requirements,
            token.identity,
            mapping,
            need_warehouse_role=task.warehouse_role_from_identity,
        )
    except PermissionMismatch as mismatch:
        trail.permission_mismatch(token, mismatch, stage="preflight")
        raise to_airflow_error(mismatch) from None
    except IdbtError as error:
        raise to_airflow_error(error) from None
