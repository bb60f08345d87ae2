"""The dbt invocation of one task's try: its environment (query comment, role, warehouse login) and arguments."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_idbt.dbt.profiles import project_profile_name, render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.query_comment import (
    QueryCommentOptions,
    project_config_for,
    project_reads_query_comment,
    query_comment_fields,
    render_query_comment,
)
from airflow_provider_idbt.dbt.runner import EXPECT_DBT_VERSION_ENV, DbtInvocation
from airflow_provider_idbt.operators.setup_checks import default_python
from airflow_provider_idbt.operators.warehouse_login import WarehouseLogin, warehouse_login
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV, WAREHOUSE_ROLE_ENV

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.manifest import ModelSpec
    from airflow_provider_idbt.dbt.permissions import Access
    from airflow_provider_idbt.events import RunKeys
    from airflow_provider_idbt.identity.token import FederatedToken
    from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator


def dbt_environment(
    task: DbtIdentityOperator, spec: ModelSpec, token: FederatedToken, access: Access, keys: RunKeys
) -> tuple[dict[str, str], WarehouseLogin]:
    """The dbt process's non-secret environment, and the warehouse login (whose secrets go apart)."""
    from airflow_provider_idbt.operators.dbt_identity import DEFAULT_COMMENT_CLAIMS

    options = task.query_comment or QueryCommentOptions(DEFAULT_COMMENT_CLAIMS)
    comment = query_comment_fields(asdict(keys), spec.unique_id, token.identity, options)
    adapter = task._adapter_type()
    # The dbt process refuses a manifest of another dbt minor version (a separate dbt virtualenv included).
    env = {QUERY_COMMENT_ENV: render_query_comment(comment), EXPECT_DBT_VERSION_ENV: task._manifest_dbt_version}
    if access.warehouse_role:
        env[WAREHOUSE_ROLE_ENV] = access.warehouse_role
    login = warehouse_login(token, adapter, task.profile_args, task.login_args)
    env.update(login.env)
    if not project_reads_query_comment(task.project_dir):
        task.log.warning(
            "idbt: %s/dbt_project.yml does not read %s, so the warehouse's log will not name who ran "
            "each statement; add this to it: %s",
            task.project_dir,
            QUERY_COMMENT_ENV,
            project_config_for(adapter),
        )
    return env, login


def invocation_for(
    task: DbtIdentityOperator, spec: ModelSpec, access: Access, env: dict[str, str], workdir: Path
) -> DbtInvocation:
    """The task's dbt command line, writing target/, logs/ (and a generated profile) under ``workdir``."""
    profiles_dir = task.profiles_dir
    if profiles_dir is None:
        assert task.profile_args is not None
        args = dict(task.profile_args)
        adapter = str(args.pop("type"))
        # Named after the project's own profile, so no --profile/--target is needed: dbt counts those
        # flags in its partial-parse check, and passing them cost a full parse per task (+1.2 s per
        # model at 30 models, docs/performance.md).
        name = task.profile_name or project_profile_name(task.project_dir) or "idbt"
        profile = render_profile(adapter, args, name, task.target or "idbt", role=access.warehouse_role)
        profiles_dir = str(write_profiles_dir(profile, workdir / "profiles"))
    return DbtInvocation(
        project_dir=task.project_dir,
        profiles_dir=profiles_dir,
        select=spec.selector,
        exclude=spec.selector_exclude,
        target_path=str(workdir / "target"),
        log_path=str(workdir / "logs"),
        profile_name=task.profile_name,
        target=task.target,
        vars=task.dbt_vars,
        command=task.command,
        extra_args=("--full-refresh",) if task._full_refresh() else (),
        python=task.dbt_python or default_python(),
        # dbt re-checks a partial parse against project, vars and profile, so a stale one only costs time.
        partial_parse_from=str(Path(task.idbt_manifest_file()).parent),
        env=env,
        run_hooks=task.run_hooks,
    )
