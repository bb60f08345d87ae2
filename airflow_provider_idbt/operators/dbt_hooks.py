"""DbtIdentityHooksOperator: run the project's on-run-start or on-run-end hooks once, as one task with its own token."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt.dbt.run_hooks import HOOK_TYPES, hook_types_arg
from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.json_log import DbtLogSummary
    from airflow_provider_idbt.dbt.manifest import ManifestIndex, ModelSpec
    from airflow_provider_idbt.dbt.permissions import Access
    from airflow_provider_idbt.dbt.results import RunResult
    from airflow_provider_idbt.events import RunKeys
    from airflow_provider_idbt.identity.token import FederatedToken


class DbtIdentityHooksOperator(DbtIdentityOperator):
    """Run every project hook of one type (packages' included, in dbt's order) and nothing else.

    The first task of a DAG run (``hook_type="on-run-start"``) or its last (``"on-run-end"``), so that model
    tasks can run with ``run_hooks=False`` (docs/run-hooks.md). It takes the model operator's arguments but
    ``model``, ``command``, ``full_refresh`` and ``run_hooks``; its token, profile, pre-flight (the identity's
    mapped role, if asked) and events are the model operator's. on-run-end hooks see an empty ``results``,
    ``schemas`` and ``database_schemas``: no model ran in this task. The events and XCom name the hooks as
    ``operation.<project>.<hook_type>``.

    :param hook_type: ``on-run-start`` or ``on-run-end``.
    """

    ui_color = "#f0e8ff"

    def __init__(self, *, hook_type: str, **kwargs: Any) -> None:
        task_id = kwargs.get("task_id", "?")
        if hook_type not in HOOK_TYPES:
            raise ValueError(f"{task_id}: hook_type must be one of {', '.join(HOOK_TYPES)}, got {hook_type!r}")
        taken = sorted(name for name in ("model", "command", "full_refresh", "run_hooks") if name in kwargs)
        if taken:
            raise ValueError(f"{task_id}: a hooks task runs the project's {hook_type} hooks only; drop {taken}")
        super().__init__(model=hook_type, **kwargs)
        self.hook_type = hook_type
        self.command = "hooks"
        self.run_hooks = hook_types_arg(hook_type)  # a `hooks` invocation runs exactly these

    def execute(self, context: Any) -> dict[str, Any]:
        result = super().execute(context)
        result["hooks"] = result.pop("tests", [])  # the hooks that ran, each with its status and timing
        return result

    def _node_spec(self, index: ManifestIndex) -> ModelSpec:
        """The hooks as one operation node; the model task's checks (adapter, profile, project, dbt) still run.

        An operation's file is not compared (hooks live in dbt_project.yml files); the project, adapter and dbt
        version are. dbt re-reads the hooks from the project in a new process, and the warm worker holds the
        deployed manifest only.
        """
        from airflow_provider_idbt.dbt.manifest import Checksum, ModelSpec

        known = [hook["unique_id"] for hook in index.hooks if hook.get("hook_type") == self.hook_type]
        if index.hooks:
            self.log.info("idbt: the project's %s hooks, in dbt's order: %s", self.hook_type, ", ".join(known))
        return ModelSpec(
            unique_id=f"operation.{index.project_name}.{self.model}",
            name=self.model,
            package_name=index.project_name,
            resource_type="operation",
            original_file_path="dbt_project.yml",
            checksum=Checksum("none", ""),
            depends_on=(),
            inputs=(),
            output=None,
            materialized="",
        )

    def _run_dbt(
        self, spec: ModelSpec, token: FederatedToken, access: Access, keys: RunKeys
    ) -> tuple[RunResult, DbtLogSummary]:
        result, log = super()._run_dbt(spec, token, access, keys)
        if result.status == "skipped" and not result.nodes:
            # dbt ran and found no hook of this type: nothing to do is this task's success, not a failure.
            result = replace(result, status="success")
        return result, log
