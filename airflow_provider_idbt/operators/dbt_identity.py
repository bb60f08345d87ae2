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

from airflow_provider_idbt.errors import IdbtError, PermissionMismatch
from airflow_provider_idbt.links import DbtDocsLink
from airflow_provider_idbt.operators.lineage import IdbtLineageMixin
from airflow_provider_idbt.version_compat import AirflowException, AirflowFailException, BaseOperator

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.manifest import ModelSpec
    from airflow_provider_idbt.dbt.results import RunResult
    from airflow_provider_idbt.dbt.runner import SubprocessRunner
    from airflow_provider_idbt.events import RunKeys
    from airflow_provider_idbt.identity.token import FederatedToken


def to_airflow_error(error: IdbtError) -> AirflowException:
    """Permanent errors fail the task without retry; transient ones leave retrying to Airflow."""
    if error.retryable:
        return AirflowException(f"{type(error).__name__}: {error}")
    return AirflowFailException(f"{type(error).__name__}: {error}")


class DbtIdentityOperator(IdbtLineageMixin, BaseOperator):
    """Run one dbt model with a short-lived federated token minted for this task.

    :param model: the model to run: its name, ``package.name`` or manifest unique id.
    :param project_dir: the dbt project directory.
    :param manifest_path: a pre-built ``manifest.json`` (``dbt parse``); the task never parses the project
        and refuses a manifest that no longer matches the model file, dbt version, adapter or project.
    :param identity_conn_id: the Airflow connection of type ``idbt_oidc`` that says where this task's
        identity comes from.
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
    :param full_refresh: pass ``--full-refresh``.
    :param dbt_python: the Python interpreter of the virtualenv that has dbt (default: this one).
    :param docs_url: base URL of the hosted dbt docs site, for the task's "dbt docs" link.
    """

    template_fields: Sequence[str] = (
        "model",
        "project_dir",
        "manifest_path",
        "profiles_dir",
        "profile_name",
        "target",
        "dbt_vars",
    )
    template_fields_renderers = {"dbt_vars": "json"}
    ui_color = "#e8f0ff"
    # Marks the provider's tasks for the listener, which stays silent for every other task.
    _idbt_provider_task = True
    operator_extra_links = (DbtDocsLink(),)

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
        min_token_ttl: timedelta | int = timedelta(minutes=10),
        dbt_vars: Mapping[str, Any] | None = None,
        full_refresh: bool = False,
        dbt_python: str | None = None,
        docs_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.project_dir = os.fspath(project_dir)
        self.manifest_path = os.fspath(manifest_path)
        self.identity_conn_id = identity_conn_id
        self.profiles_dir = os.fspath(profiles_dir) if profiles_dir is not None else None
        self.profile_name = profile_name
        self.target = target
        self.profile_args = dict(profile_args) if profile_args else None
        self.min_token_ttl = min_token_ttl if isinstance(min_token_ttl, timedelta) else timedelta(seconds=min_token_ttl)
        self.dbt_vars = dict(dbt_vars) if dbt_vars else None
        self.full_refresh = full_refresh
        self.dbt_python = dbt_python
        self.docs_url = docs_url
        self._runner: SubprocessRunner | None = None
        self._idbt_unique_id: str | None = None
        if self.profiles_dir is None and not self.profile_args:
            raise ValueError(
                f"{self.task_id}: give either profiles_dir (a directory with your profiles.yml) or "
                "profile_args (e.g. {'type': 'duckdb', 'path': 'warehouse.duckdb'}) to generate one"
            )

    # -- Airflow entry points ------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_idbt import events

        keys = events.RunKeys.from_task_instance(context["ti"])
        spec = self._load_model()
        token = self._fetch_token(keys, spec)
        model_fields = self.idbt_model_fields(spec)
        events.emit(
            self.log,
            events.build_event(
                "token_issued",
                keys,
                identity=token.identity,
                model=model_fields,
                audience=list(token.audience),
                expires_at=token.expires_at.isoformat(timespec="seconds"),
            ),
        )
        events.emit(
            self.log,
            events.build_event(
                "model_run",
                keys,
                identity=token.identity,
                model=model_fields,
                phase="start",
            ),
        )
        started = time.monotonic()
        try:
            result = self._run_dbt(spec, token)
        except IdbtError as error:
            self._emit_end(keys, token, model_fields, "error", time.monotonic() - started, error)
            raise to_airflow_error(error) from None
        duration = round(time.monotonic() - started, 3)
        node = result.for_model(spec.unique_id)
        status = node.status if node is not None else result.status
        if result.status == "success":
            self._emit_end(keys, token, model_fields, "success", duration, None)
            return {
                "model": spec.unique_id,
                "relation": spec.output,
                "status": "success",
                "subject": token.identity.subject,
                "token_fingerprint": token.fingerprint,
                "duration_s": duration,
            }
        failure = self._classify(spec, token, result)
        if isinstance(failure, PermissionMismatch):
            events.emit(
                self.log,
                events.build_event(
                    "permission_mismatch",
                    keys,
                    identity=token.identity,
                    model=model_fields,
                    required=list(failure.required),
                    held=list(failure.held),
                    warehouse_message=failure.warehouse_message,
                ),
            )
        self._emit_end(keys, token, model_fields, status or "error", duration, failure)
        raise to_airflow_error(failure)

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.terminate()

    # -- steps ---------------------------------------------------------------------------------------

    def _load_model(self) -> ModelSpec:
        from airflow_provider_idbt.dbt.manifest import ManifestIndex

        try:
            index = ManifestIndex.load(self.manifest_path)
            spec = index.model(self.model)
            index.check_fresh(
                self.project_dir, spec, adapter_type=self._adapter_type(), dbt_version=self._dbt_version()
            )
        except IdbtError as error:
            raise to_airflow_error(error) from None
        self._idbt_unique_id = spec.unique_id
        return spec

    def _adapter_type(self) -> str | None:
        from airflow_provider_idbt.dbt.profiles import declared_adapter_type

        if self.profile_args:
            return str(self.profile_args.get("type") or "") or None
        assert self.profiles_dir is not None
        return declared_adapter_type(self.profiles_dir, self.project_dir, self.profile_name, self.target)

    def _dbt_version(self) -> str | None:
        """The dbt-core version of this interpreter; unknown (not checked) for a separate dbt virtualenv."""
        if self.dbt_python is not None:
            return None
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("dbt-core")
        except PackageNotFoundError:
            return None

    def _fetch_token(self, keys: RunKeys, spec: ModelSpec) -> FederatedToken:
        from airflow_provider_idbt import events
        from airflow_provider_idbt.hooks import identity_hook_for

        try:
            return identity_hook_for(self.identity_conn_id).get_token(min_ttl=self.min_token_ttl)
        except IdbtError as error:
            events.emit(
                self.log,
                events.build_event(
                    "auth_failure",
                    keys,
                    model=self.idbt_model_fields(spec),
                    connection=self.identity_conn_id,
                    error_class=type(error).__name__,
                    error_message=str(error),
                ),
            )
            raise to_airflow_error(error) from None

    def _run_dbt(self, spec: ModelSpec, token: FederatedToken) -> RunResult:
        from airflow_provider_idbt.dbt.profiles import TOKEN_ENV_VAR, render_profile, write_profiles_dir
        from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner

        # One private directory per try: target/, logs/ and a generated profile never collide with a
        # parallel task, and nothing is left behind under the project.
        workdir = Path(tempfile.mkdtemp(prefix=f"idbt-{self.task_id}-"))
        try:
            os.chmod(workdir, 0o700)
            profiles_dir = self.profiles_dir
            profile_name = self.profile_name
            target = self.target
            if profiles_dir is None:
                assert self.profile_args is not None
                args = dict(self.profile_args)
                adapter = str(args.pop("type"))
                profile_name = profile_name or "idbt"
                target = target or "idbt"
                profile = render_profile(adapter, args, profile_name, target)
                profiles_dir = str(write_profiles_dir(profile, workdir / "profiles"))
            invocation = DbtInvocation(
                project_dir=self.project_dir,
                profiles_dir=profiles_dir,
                select=spec.selector,
                exclude=spec.selector_exclude,
                target_path=str(workdir / "target"),
                log_path=str(workdir / "logs"),
                profile_name=profile_name,
                target=target,
                vars=self.dbt_vars,
                extra_args=("--full-refresh",) if self.full_refresh else (),
                python=self.dbt_python or _default_python(),
                # dbt re-checks a partial parse against project, vars and profile, so a stale one only costs time.
                partial_parse_from=str(Path(self.manifest_path).parent),
            )
            self._runner = SubprocessRunner()
            return self._runner.run(invocation, {TOKEN_ENV_VAR: token.reveal()}, on_line=self._log_dbt_line)
        finally:
            self._runner = None
            shutil.rmtree(workdir, ignore_errors=True)

    def _classify(self, spec: ModelSpec, token: FederatedToken, result: RunResult) -> IdbtError:
        from airflow_provider_idbt.dbt.results import classify_failure
        from airflow_provider_idbt.errors import DbtRunFailed

        node = result.for_model(spec.unique_id)
        message = (node.message if node is not None else None) or f"dbt exited with code {result.returncode}"
        kind = classify_failure(result)
        if kind == "permission":
            return PermissionMismatch(
                f"the warehouse refused identity `{token.identity.subject}` running model "
                f"`{spec.unique_id}`: {message}",
                model=spec.unique_id,
                subject=token.identity.subject,
                held=token.identity.groups,
                warehouse_message=message,
            )
        return DbtRunFailed(f"model `{spec.unique_id}` failed ({kind}): {message}")

    def _emit_end(
        self,
        keys: RunKeys,
        token: FederatedToken,
        model_fields: dict[str, Any],
        status: str,
        duration: float,
        error: BaseException | None,
    ) -> None:
        from airflow_provider_idbt import events

        events.emit(
            self.log,
            events.build_event(
                "model_run",
                keys,
                identity=token.identity,
                model=model_fields,
                phase="end",
                status=status,
                duration_s=round(duration, 3),
                error_class=type(error).__name__ if error else None,
                error_message=str(error) if error else None,
            ),
        )

    def _log_dbt_line(self, line: str) -> None:
        self.log.info("dbt | %s", line.rstrip())


def _default_python() -> str:
    import sys

    return sys.executable


def _model_event_fields(spec: ModelSpec) -> dict[str, Any]:
    return {"unique_id": spec.unique_id, "inputs": list(spec.inputs), "outputs": [spec.output]}
