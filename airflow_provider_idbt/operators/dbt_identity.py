"""DbtIdentityOperator: run exactly one dbt model as one Airflow task, with a token minted for that task."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.errors import IdbtError, PermissionMismatch, WarehouseAuthFailed
from airflow_provider_idbt.links import DbtDocsLink, ModelRunLink
from airflow_provider_idbt.operators.execution_mode import MODES as EXECUTION_MODES
from airflow_provider_idbt.operators.lineage import IdbtLineageMixin
from airflow_provider_idbt.operators.setup_checks import default_python
from airflow_provider_idbt.operators.task_failure import to_airflow_error
from airflow_provider_idbt.version_compat import BaseOperator

DEFAULT_MIN_TOKEN_TTL = timedelta(minutes=10)
DEFAULT_COMMENT_CLAIMS = ("sub",)  # dbt/query_comment.py's default: no personal data

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.json_log import DbtLogSummary
    from airflow_provider_idbt.dbt.lineage import ModelLineage
    from airflow_provider_idbt.dbt.manifest import ManifestIndex, ModelSpec
    from airflow_provider_idbt.dbt.permissions import Access
    from airflow_provider_idbt.dbt.query_comment import QueryCommentOptions
    from airflow_provider_idbt.dbt.results import RunResult
    from airflow_provider_idbt.dbt.runner import SubprocessRunner
    from airflow_provider_idbt.events import RunKeys
    from airflow_provider_idbt.identity.token import FederatedToken
    from airflow_provider_idbt.operators.run_events import ModelRunEvents


class DbtIdentityOperator(IdbtLineageMixin, BaseOperator):
    """Run one dbt model with a short-lived federated token minted for this task.

    :param model: the model to run: its name, ``package.name`` or manifest unique id.
    :param project_dir: the dbt project directory.
    :param manifest_path: a pre-built ``manifest.json`` (``idbt prepare``): a path, or an object-storage URI
        (``s3://``, ``gs://``, ``abfs://``, ``file://``) read with ``manifest_conn_id``; the task never parses
        the project and refuses a manifest that no longer matches the model file, dbt version, adapter or project.
    :param identity_conn_id: the Airflow connection (``idbt_oidc``, ``idbt_aws``, ``idbt_google`` or ``idbt_azure``)
        that says where this task's identity comes from and what it is exchanged for; templated (docs/environments.md).
    :param profiles_dir: a directory holding the user's ``profiles.yml``; its profile can read the token
        with ``{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}``. When omitted, a profile is generated from
        ``profile_args`` into a private temporary directory.
    :param profile_name: the dbt profile to use (default: the project's ``profile``).
    :param target: the dbt target to use (default: the profile's default target).
    :param profile_args: for a generated profile: ``{"type": "<adapter>", ...fields}`` (no secrets: the
        token is always read from the environment of the dbt process).
    :param min_token_ttl: the token handed to dbt stays valid at least this long (seconds or timedelta);
        a cached token closer to expiry is refreshed first.
    :param dbt_vars: ``--vars`` for dbt.
    :param full_refresh: pass ``--full-refresh`` (``run``, ``build``, ``seed``); templated, so
        ``"{{ params.full_refresh }}"`` works.
    :param command: the dbt command for the node: ``run`` (a model), ``build`` (a model, seed or snapshot with
        its tests), ``test`` (the tests of a model, seed or snapshot), ``seed`` or ``snapshot``.
    :param dbt_python: the Python interpreter of the virtualenv that has dbt (default: this one).
    :param docs_url: base URL of the hosted dbt docs site, for the task's "dbt docs" link.
    :param warehouse_role_from_identity: run as the warehouse role the identity maps to (``role_mapping``
        on the identity connection or ``[idbt] role_mapping``): the model's first required role the identity
        holds, else its first mapped role. A generated profile gets ``role``; a user's profile reads it with
        ``{{ env_var('IDBT_WAREHOUSE_ROLE') }}``. PostgreSQL runs ``SET ROLE`` with it.
    :param query_comment_claims: identity claims in the query comment (``sub``, ``iss``, ``principal``,
        ``groups``, ``aud``, ``fingerprint``, ``attr:<name>``); default ``("sub",)``, no personal data.
    :param query_comment_hash: put ``sha256:<16 hex>`` of each claim value in the comment instead of the value.
    :param execution_mode: ``subprocess`` (a new dbt process per run) or ``warm`` (a child forked by this host's
        warm dbt worker, which keeps dbt and the manifest loaded; falls back to ``subprocess`` with one warning
        when the worker cannot take the run). Default: ``[idbt] execution_mode``, else ``subprocess``.
    :param login_args: with your own profiles.yml, the fields a warehouse's login step reads (Redshift's
        ``cluster_identifier``/``db_user``/``region``, RDS's ``iam_auth``/``region``, ...); a generated profile
        takes them in ``profile_args``. See docs/warehouses/.
    :param run_hooks: the project hooks this task runs: True (all, as dbt), False (none) or hook types (run-hooks.md).
    :param tests: with ``command="test"``, exactly these tests (unique ids ``test.<package>.<name>.<hash>`` or
        names) instead of every test of the node: a test the DAG's selection excluded never runs, and a test across
        two nodes runs once, in the task after both. The task still names ``model``, the node the tests check.
    """

    template_fields: Sequence[str] = (
        "model",
        "project_dir",
        "manifest_path",
        "identity_conn_id",
        "profiles_dir",
        "profile_name",
        "target",
        "dbt_vars",
        "full_refresh",
    )
    template_fields_renderers = {"dbt_vars": "json"}
    ui_color = "#e8f0ff"
    # Marks the provider's tasks for the listener, which stays silent for every other task.
    _idbt_provider_task = True
    operator_extra_links = (DbtDocsLink(), ModelRunLink())

    # What a task leaves at its default stays a class attribute: __init__ sets an instance attribute only for a
    # value given. Each attribute set on an operator goes through BaseOperator.__setattr__ (about 1 µs), and a
    # 2,000-task group would set some 30,000 that only repeat these defaults (bench/parse_scale.py).
    command: str = "run"
    run_hooks: bool | tuple[str, ...] = True
    manifest_conn_id: str | None = None
    profiles_dir: str | None = None
    profile_name: str | None = None
    target: str | None = None
    profile_args: dict[str, Any] | None = None
    min_token_ttl: timedelta = DEFAULT_MIN_TOKEN_TTL
    dbt_vars: dict[str, Any] | None = None
    full_refresh: bool | str = False
    dbt_python: str | None = None
    docs_url: str | None = None
    warehouse_role_from_identity: bool = False
    query_comment: QueryCommentOptions | None = None  # None: the claims in DEFAULT_COMMENT_CLAIMS, unhashed
    execution_mode: str | None = None
    login_args: dict[str, Any] | None = None
    tests: list[str] | None = None
    _requires_tests = False  # DbtIdentityTestOperator: a task of given tests
    _runner: SubprocessRunner | None = None
    _idbt_unique_id: str | None = None
    _manifest_dbt_version: str = ""

    def __init__(
        self,
        *,
        model: str,
        project_dir: str | os.PathLike[str],
        manifest_path: str | os.PathLike[str],
        identity_conn_id: str,
        profiles_dir: str | os.PathLike[str] | None = None,
        profile_name: str | None = None,
        target: str | None = None,
        profile_args: Mapping[str, Any] | None = None,
        min_token_ttl: timedelta | int = DEFAULT_MIN_TOKEN_TTL,
        dbt_vars: Mapping[str, Any] | None = None,
        full_refresh: bool = False,
        dbt_python: str | None = None,
        docs_url: str | None = None,
        warehouse_role_from_identity: bool = False,
        query_comment_claims: Sequence[str] = DEFAULT_COMMENT_CLAIMS,
        query_comment_hash: bool = False,
        execution_mode: str | None = None,
        login_args: Mapping[str, Any] | None = None,
        manifest_conn_id: str | None = None,
        command: str | None = None,
        run_hooks: bool | str | Sequence[str] = True,
        tests: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_idbt.dbt.commands import check_full_refresh, node_types

        super().__init__(**kwargs)
        # Only what differs from the class defaults above is set on the task (see there).
        if command is None:
            command = type(self).command
        if tests is not None or self._requires_tests:
            from airflow_provider_idbt.operators.dbt_tests import checked_tests

            self.tests = checked_tests(self.task_id, command, tests)
        try:
            node_types(command)
            if run_hooks is not True:
                from airflow_provider_idbt.dbt.run_hooks import hook_types_arg

                self.run_hooks = hook_types_arg(run_hooks)
            if isinstance(full_refresh, bool):
                check_full_refresh(command, full_refresh)
        except IdbtError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        if command != type(self).command:
            self.command = command
        self.model = model
        self.project_dir = os.fspath(project_dir)
        self.manifest_path = os.fspath(manifest_path)
        self.identity_conn_id = identity_conn_id
        if profiles_dir is not None:
            self.profiles_dir = os.fspath(profiles_dir)
        elif not profile_args:
            raise ValueError(
                f"{self.task_id}: give either profiles_dir (a directory with your profiles.yml) or "
                "profile_args (e.g. {'type': 'duckdb', 'path': 'warehouse.duckdb'}) to generate one"
            )
        given = {
            "manifest_conn_id": manifest_conn_id,
            "profile_name": profile_name,
            "target": target,
            "profile_args": dict(profile_args) if profile_args else None,
            "dbt_vars": dict(dbt_vars) if dbt_vars else None,
            "dbt_python": dbt_python,
            "docs_url": docs_url,
            "execution_mode": execution_mode,
            "login_args": dict(login_args) if login_args else None,
        }
        for name, value in given.items():
            if value is not None:
                setattr(self, name, value)
        if full_refresh is not False:
            self.full_refresh = full_refresh
        if min_token_ttl != DEFAULT_MIN_TOKEN_TTL:
            self.min_token_ttl = (
                min_token_ttl if isinstance(min_token_ttl, timedelta) else timedelta(seconds=min_token_ttl)
            )
        if warehouse_role_from_identity:
            self.warehouse_role_from_identity = True
        if tuple(query_comment_claims) != DEFAULT_COMMENT_CLAIMS or query_comment_hash:
            from airflow_provider_idbt.dbt.query_comment import QueryCommentOptions

            self.query_comment = QueryCommentOptions(tuple(query_comment_claims), query_comment_hash)
        if warehouse_role_from_identity and self.profile_args and self.profile_args.get("role"):
            raise ValueError(
                f"{self.task_id}: profile_args sets `role` and warehouse_role_from_identity is on; choose one"
            )
        if execution_mode is not None and execution_mode not in EXECUTION_MODES:
            raise ValueError(f"{self.task_id}: execution_mode must be one of {', '.join(EXECUTION_MODES)}")

    # -- Airflow entry points ------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_idbt.events import RunKeys
        from airflow_provider_idbt.operators.run_events import publish_events

        keys = RunKeys.from_task_instance(context["ti"])
        try:
            return self._run_node(keys)
        finally:
            # Every outcome: the "Model runs" view and `idbt audit` read a try's events from here, not its log.
            publish_events(context["ti"], keys, self.log)

    def _run_node(self, keys: RunKeys) -> dict[str, Any]:
        from airflow_provider_idbt.dbt.failures import may_refresh_and_rerun
        from airflow_provider_idbt.dbt.task_result import task_result
        from airflow_provider_idbt.operators.identity_steps import fetch_token, preflight
        from airflow_provider_idbt.operators.run_events import ModelRunEvents

        spec = self._load_model()
        trail = ModelRunEvents(self.log, keys, self.idbt_model_fields(spec))
        token = fetch_token(self, trail)
        trail.token_issued(token)
        access = preflight(self, trail, spec, token)
        trail.started(token, warehouse_role=access.warehouse_role)
        started = time.monotonic()
        refreshed = False
        while True:
            try:
                result, log = self._run_dbt(spec, token, access, keys)
            except IdbtError as error:
                trail.ended(token, "error", time.monotonic() - started, error)
                raise to_airflow_error(error) from None
            if refreshed or not may_refresh_and_rerun(result, log, self._adapter_type()):
                break
            # The warehouse refused the token before any statement of the model ran: nothing to undo, so
            # one fresh token and one more run; a second refusal fails the try (retryable).
            self._warehouse_auth_failure(trail, token, result, log, action="refresh_token")
            token = fetch_token(self, trail, refresh=True)
            trail.token_issued(token, reason="refresh")
            refreshed = True
        duration = round(time.monotonic() - started, 3)
        node = result.for_model(spec.unique_id)
        status = node.status if node is not None else result.status
        if result.status == "success":
            trail.ended(token, "success", duration, None)
            return task_result(
                self.command, spec, result, token.identity, warehouse_role=access.warehouse_role, duration=duration
            )
        failure = self._classify(spec, token, result, log, refreshed)
        if isinstance(failure, PermissionMismatch):
            trail.permission_mismatch(token, failure, stage="warehouse")
        elif isinstance(failure, WarehouseAuthFailed):
            self._warehouse_auth_failure(trail, token, result, log, action="retry_task")
        trail.ended(token, status or "error", duration, failure)
        raise to_airflow_error(failure)

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.terminate()

    # -- steps ---------------------------------------------------------------------------------------

    def _load_model(self) -> ModelSpec:
        from airflow_provider_idbt.dbt.manifest import ManifestIndex
        from airflow_provider_idbt.operators.setup_checks import (
            check_adapter_installed,
            check_profile_target,
            dbt_version,
        )

        try:
            check_adapter_installed(self._adapter_type(), self.dbt_python)
            if self.profiles_dir is not None:
                check_profile_target(self.profiles_dir, self.project_dir, self.profile_name, self.target)
            index = ManifestIndex.load(self.idbt_manifest_file())
            spec = self._node_spec(index)
            index.check_fresh(
                self.project_dir, spec, adapter_type=self._adapter_type(), dbt_version=dbt_version(self.dbt_python)
            )
        except IdbtError as error:
            raise to_airflow_error(error) from None
        self._idbt_unique_id = spec.unique_id
        self._manifest_dbt_version = index.dbt_version
        return spec

    def _node_spec(self, index: ManifestIndex) -> ModelSpec:
        """The node this task runs, read from the manifest (subclasses run other kinds of nodes)."""
        from airflow_provider_idbt.dbt.commands import node_types

        spec = index.node(self.model, node_types(self.command))
        if not self.tests:
            return spec
        from airflow_provider_idbt.operators.dbt_tests import given_tests_spec

        return given_tests_spec(index, spec, self.tests)

    def idbt_model_lineage(self) -> ModelLineage | None:
        lineage = super().idbt_model_lineage()
        if lineage is None or not self.tests:
            return lineage
        from dataclasses import replace

        return replace(lineage, outputs=())  # a task of given tests writes nothing

    def _full_refresh(self) -> bool:
        from airflow_provider_idbt.dbt.commands import check_full_refresh, parse_flag

        full_refresh = parse_flag("full_refresh", self.full_refresh)
        check_full_refresh(self.command, full_refresh)
        return full_refresh

    def _adapter_type(self) -> str | None:
        from airflow_provider_idbt.dbt.profiles import declared_adapter_type

        if self.profile_args:
            return str(self.profile_args.get("type") or "") or None
        assert self.profiles_dir is not None
        return declared_adapter_type(self.profiles_dir, self.project_dir, self.profile_name, self.target)

    def _run_dbt(
        self, spec: ModelSpec, token: FederatedToken, access: Access, keys: RunKeys
    ) -> tuple[RunResult, DbtLogSummary]:
        from airflow_provider_idbt.dbt.json_log import read_dbt_log
        from airflow_provider_idbt.operators.dbt_invocation import dbt_environment, invocation_for

        env, login = dbt_environment(self, spec, token, access, keys)
        # One private directory per try: target/, logs/ and a generated profile never collide with a
        # parallel task, and nothing is left behind under the project.
        workdir = Path(tempfile.mkdtemp(prefix=f"idbt-{self.task_id}-"))
        try:
            os.chmod(workdir, 0o700)
            invocation = invocation_for(self, spec, access, env, workdir)
            shown = [*invocation.args()[: 5 if invocation.exclude else 3], *invocation.extra_args]
            self.log.info("idbt: dbt %s", " ".join(shown))
            self._runner = self._make_runner()
            result = self._runner.run(invocation, dict(login.secret_env), on_line=self._log_dbt_line)
            return result, read_dbt_log(invocation.log_path, spec.unique_id)
        finally:
            self._runner = None
            shutil.rmtree(workdir, ignore_errors=True)

    def _classify(
        self, spec: ModelSpec, token: FederatedToken, result: RunResult, log: DbtLogSummary, refreshed: bool
    ) -> IdbtError:
        from airflow_provider_idbt.dbt.failures import failure_for

        python = self.dbt_python or default_python()
        return failure_for(spec.unique_id, token.identity, result, log, self._adapter_type(), refreshed, python)

    def _warehouse_auth_failure(
        self, trail: ModelRunEvents, token: FederatedToken, result: RunResult, log: DbtLogSummary, *, action: str
    ) -> None:
        trail.warehouse_auth_failure(token, self.identity_conn_id, result, log, self._adapter_type(), action=action)

    def _make_runner(self) -> SubprocessRunner:
        from airflow_provider_idbt.operators.execution_mode import make_runner

        return make_runner(
            self.execution_mode,
            getattr(self, "executor", None),
            self.idbt_manifest_file(),
            self._adapter_type(),
            self.log.warning,
        )

    def _log_dbt_line(self, line: str) -> None:
        self.log.info("dbt | %s", line.rstrip())
