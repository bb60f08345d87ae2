"""DbtIdentityTaskGroup: one DbtIdentityOperator per model of a compiled manifest, wired by `depends_on`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.errors import IdbtError
from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator
from airflow_provider_idbt.version_compat import TaskGroup


class DbtIdentityTaskGroup(TaskGroup):
    """A task group with one task per dbt model, so every model is its own run in the Airflow UI.

    Reading the manifest is the only work done at DAG-parse time (no dbt import, no project parse).

    :param group_id: the task group id.
    :param project_dir: the dbt project directory.
    :param manifest_path: the pre-built ``manifest.json`` (``dbt parse``).
    :param identity_conn_id: the identity connection every model task authenticates with.
    :param profiles_dir: the user's profiles directory (see :class:`DbtIdentityOperator`).
    :param execution_mode: ``subprocess`` or ``warm`` for every model task (see :class:`DbtIdentityOperator`).
    :param operator_kwargs: further keyword arguments for every model task (``pool``, ``retries``,
        ``profile_args``, ``target``, ...).
    """

    def __init__(
        self,
        group_id: str,
        *,
        project_dir: str | os.PathLike[str],
        manifest_path: str | os.PathLike[str],
        identity_conn_id: str,
        profiles_dir: str | os.PathLike[str] | None = None,
        execution_mode: str | None = None,
        operator_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(group_id=group_id, **kwargs)
        try:
            index = ManifestIndex.load(manifest_path)
        except IdbtError as error:
            raise ValueError(f"task group `{group_id}`: {error}") from None
        extra = dict(operator_kwargs or {})
        if execution_mode is not None:
            extra["execution_mode"] = execution_mode
        self.model_tasks: dict[str, DbtIdentityOperator] = {}
        with self:
            for spec in index.models():
                self.model_tasks[spec.unique_id] = DbtIdentityOperator(
                    task_id=spec.name,
                    model=spec.unique_id,
                    project_dir=project_dir,
                    manifest_path=manifest_path,
                    identity_conn_id=identity_conn_id,
                    profiles_dir=profiles_dir,
                    **extra,
                )
        for unique_id, task in self.model_tasks.items():
            for parent in index.model(unique_id).depends_on:
                upstream = self.model_tasks.get(parent)
                if upstream is not None:
                    upstream >> task
