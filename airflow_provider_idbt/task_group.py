"""DbtIdentityTaskGroup: one task per selected dbt node of a compiled manifest, wired by the manifest's edges."""

from __future__ import annotations

import functools
import gc
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.dbt.run_hooks import hoist_plan
from airflow_provider_idbt.dbt.task_plan import TASK_TYPES, PlannedTask, plan_tasks
from airflow_provider_idbt.errors import IdbtError
from airflow_provider_idbt.manifest_store import local_manifest
from airflow_provider_idbt.operators.dbt_hooks import DbtIdentityHooksOperator
from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator
from airflow_provider_idbt.operators.dbt_tests import DbtIdentityTestOperator
from airflow_provider_idbt.version_compat import TaskGroup

_SECONDS = ("retry_delay", "execution_timeout")
log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_gc_pauses(build: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``build`` with the cyclic garbage collector paused (then resumed, if it was on).

    A build allocates thousands of long-lived objects (index records, operators, Assets), each batch of which
    sets off a full collection of the whole interpreter heap: about a fifth of a 2,000-task build, and more as
    the DAG grows (bench/parse_scale.py). Nothing a build allocates needs collecting before it returns.
    """

    @functools.wraps(build)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return build(*args, **kwargs)
        gc.disable()
        try:
            return build(*args, **kwargs)
        finally:
            gc.enable()

    return paused


class DbtIdentityTaskGroup(TaskGroup):
    """A task group with one task per dbt node, so every model is its own run in the Airflow UI.

    Reading the manifest's slim index is the only work done at DAG-parse time (no dbt import, no project parse).
    By default every enabled model, seed and snapshot of every installed package becomes a task (what
    ``dbt build`` would run), with each node's tests in a task after it.

    :param group_id: the task group id.
    :param project_dir: the dbt project directory.
    :param manifest_path: the pre-built ``manifest.json`` (``idbt prepare``), a path or an object-storage URI
        (``s3://``, ``gs://``, ``abfs://``, ``file://``; see docs/manifests.md).
    :param identity_conn_id: the identity connection the tasks authenticate with (a node's ``meta.idbt`` or
        ``node_settings`` may name another).
    :param profiles_dir: the user's profiles directory (see :class:`DbtIdentityOperator`).
    :param execution_mode: ``subprocess`` or ``warm`` for every task (see :class:`DbtIdentityOperator`).
    :param operator_kwargs: further keyword arguments for every task (``pool``, ``retries``, ``profile_args``,
        ``target``, ...).
    :param select: dbt node selection (``"tag:finance +orders"``, a list of them, ...), resolved from the manifest
        as dbt resolves it; default: every node, or the project's ``default: true`` selector.
    :param exclude: dbt's ``--exclude``, the same grammar.
    :param selector: a YAML selector of the project's ``selectors.yml``.
    :param tests: where the selected tests run: ``after_each`` (a test task after each node, the default),
        ``build`` (in the node's own task, ``dbt build``), ``after_all`` (test tasks after every node) or ``none``.
    :param resource_types: which node types become tasks (default: models, seeds and snapshots).
    :param folder_groups: nest tasks in task groups named after the nodes' folders (and packages).
    :param assets: declare each node's relation as an outlet Asset, and what it reads as inlet Assets, so
        downstream DAGs can be scheduled on a model.
    :param node_settings: per-node task settings keyed by name, ``package.name`` or unique id
        (``{"orders": {"pool": "finance", "identity_conn_id": "idbt_finance"}}``); they win over ``meta.idbt``.
    :param manifest_conn_id: the Airflow connection ``ObjectStoragePath`` reads a manifest URI with.
    :param run_hooks: the project's on-run-start / on-run-end hooks: ``auto`` (the default: each hook type runs
        once, in its own first or last task, when none of its hooks reads an invocation's results; else in every
        task), ``once`` or ``per_task`` (dbt's own behaviour). See docs/run-hooks.md.
    """

    @_without_gc_pauses
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
        select: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        selector: str | None = None,
        tests: str = "after_each",
        resource_types: Iterable[str] = TASK_TYPES,
        folder_groups: bool = False,
        assets: bool = True,
        node_settings: Mapping[str, Mapping[str, Any]] | None = None,
        manifest_conn_id: str | None = None,
        run_hooks: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(group_id=group_id, **kwargs)
        extra = dict(operator_kwargs or {})
        if execution_mode is not None:
            extra["execution_mode"] = execution_mode
        try:
            index = ManifestIndex.load(local_manifest(manifest_path, conn_id=manifest_conn_id))
            index.check_project(project_dir)
            selected = _select(index, select, exclude, selector)
            hooks = hoist_plan(index.hooks, run_hooks)
            plan = plan_tasks(
                index,
                selected,
                tests=tests,
                resource_types=resource_types,
                folder_groups=folder_groups,
                overrides=node_settings,
            )
        except IdbtError as error:
            raise ValueError(f"task group `{group_id}`: {error}") from None
        if not plan:
            raise ValueError(
                f"task group `{group_id}`: the selection {_describe(select, exclude, selector)} matches no "
                f"model, seed or snapshot of {index.path} (project {index.project_name!r}, {len(index.nodes)} "
                "nodes); check the names and methods against `dbt ls` with the same arguments"
            )
        for reason in hooks.reasons:
            log.info("idbt: task group `%s`: %s", group_id, reason)
        if hooks.once:
            extra["run_hooks"] = hooks.model_task_hooks
        namespace = _namespace(extra, project_dir, profiles_dir) if assets else None
        common = {
            "project_dir": project_dir,
            "manifest_path": manifest_path,
            "manifest_conn_id": manifest_conn_id,
            "identity_conn_id": identity_conn_id,
            "profiles_dir": profiles_dir,
        }
        self.model_tasks: dict[str, DbtIdentityOperator] = {}
        self.test_tasks: dict[str, DbtIdentityTestOperator] = {}
        self.planned: dict[str, PlannedTask] = {}
        tasks: dict[str, DbtIdentityOperator] = {}
        groups: dict[tuple[str, ...], TaskGroup] = {}
        asset_cache = _Assets(namespace)
        for item in plan:
            with self._folder_group(item.folder, groups):
                task = self._make_task(item, common, extra, asset_cache)
            # Wired as soon as it exists (the plan lists parents first).
            if item.upstream:
                _wire(task, [tasks[parent] for parent in item.upstream])
            tasks[item.task_id] = task
            self.planned[item.task_id] = item
            if item.command == "test":
                self.test_tasks[item.task_id] = task  # type: ignore[assignment]
            else:
                self.model_tasks[item.node] = task
        hook_kwargs = {key: value for key, value in {**common, **extra}.items() if key != "run_hooks"}
        if hooks.start_task:
            with self:
                self.start_task = DbtIdentityHooksOperator(
                    task_id="on_run_start", hook_type="on-run-start", **hook_kwargs
                )
            roots = [task for item, task in zip(plan, tasks.values(), strict=True) if not item.upstream]
            self.start_task >> roots
        if hooks.end_task:
            with self:
                self.end_task = DbtIdentityHooksOperator(
                    task_id="on_run_end", hook_type="on-run-end", trigger_rule="all_done", **hook_kwargs
                )
            list(tasks.values()) >> self.end_task

    def _folder_group(self, folder: tuple[str, ...], groups: dict[tuple[str, ...], TaskGroup]) -> TaskGroup:
        parent: TaskGroup = self
        for depth in range(1, len(folder) + 1):
            key = folder[:depth]
            if key not in groups:
                with parent:
                    groups[key] = TaskGroup(group_id=key[-1])
            parent = groups[key]
        return parent

    def _make_task(
        self, item: PlannedTask, common: Mapping[str, Any], extra: Mapping[str, Any], assets: _Assets
    ) -> DbtIdentityOperator:
        kwargs: dict[str, Any] = {**common, **extra}
        for key, value in item.settings.items():
            kwargs[key] = timedelta(seconds=value) if key in _SECONDS else value
        kwargs.setdefault("task_display_name", item.label)
        if item.doc:
            kwargs.setdefault("doc_md", item.doc)
        if assets.namespace is not None:
            kwargs.setdefault("outlets", assets.of(item.outputs))
            kwargs.setdefault("inlets", assets.of(item.inputs))
        if item.command == "test":
            return DbtIdentityTestOperator(task_id=item.task_id, model=item.node, tests=item.tests, **kwargs)
        return DbtIdentityOperator(task_id=item.task_id, model=item.node, command=item.command, **kwargs)


def _wire(task: DbtIdentityOperator, parents: list[DbtIdentityOperator]) -> None:
    """Make ``parents`` upstream of ``task``: what ``task.set_upstream(parents)`` records, without its DAG check.

    ``set_upstream`` first checks that every task named belongs to one DAG, by hashing each one's DAG, and a DAG's
    hash covers every task id it holds: a check that costs the size of the whole DAG for each task wired, about a
    third of a 2,000-task build (bench/parse_scale.py). Every task here was made by this group, in its DAG, so
    the check can only pass; it is made once, cheaply, by identity. For tasks, ``set_upstream`` then records the
    edge in the two tasks' id sets (``update_relative`` does nothing for an operator), as done here.
    tests/unit/test_task_group_wiring.py holds the result equal to ``set_upstream``'s on each Airflow version.
    """
    if any(parent.dag is not task.dag for parent in parents):
        task.set_upstream(parents)  # not this group's DAG: let Airflow say what is wrong
        return
    for parent in parents:
        parent.downstream_task_ids.add(task.node_id)
        task.upstream_task_ids.add(parent.node_id)


def _select(
    index: ManifestIndex, select: str | Sequence[str] | None, exclude: str | Sequence[str] | None, selector: str | None
) -> frozenset[str]:
    from airflow_provider_idbt.dbt.selection import select_nodes

    return select_nodes(
        index.nodes,
        select=select,
        exclude=exclude,
        selector=selector,
        selectors=index.selectors,
        project_name=index.project_name,
    )


def _describe(select: Any, exclude: Any, selector: Any) -> str:
    parts = [f"{name}={value!r}" for name, value in (("select", select), ("exclude", exclude), ("selector", selector))]
    return "(" + ", ".join(part for part in parts if not part.endswith("=None")) + ")"


def _namespace(
    extra: Mapping[str, Any], project_dir: str | os.PathLike[str], profiles_dir: str | os.PathLike[str] | None
) -> str | None:
    """The OpenLineage namespace the tasks' events use, so each Asset URI names the same dataset."""
    from airflow_provider_idbt.dbt.lineage import dataset_namespace, profile_target

    try:
        if extra.get("profile_args"):
            return dataset_namespace(extra["profile_args"])
        if profiles_dir is not None:
            profile_name, target = (_at_parse_time(extra.get(key)) for key in ("profile_name", "target"))
            return dataset_namespace(profile_target(profiles_dir, project_dir, profile_name, target))
    except (KeyError, OSError, ValueError):
        return None
    return None


def _at_parse_time(value: Any) -> Any:
    """A templated ``target`` or ``profile_name`` as the tasks will render it, for the Assets' namespace.

    Only Variables (``var.value``, ``var.json``) can be known when the DAG file is parsed; a template that
    needs anything else (a run's ``ds``, ``params``) raises ValueError: the group then declares no Assets.
    """
    if not isinstance(value, str) or "{{" not in value:
        return value
    from airflow.sdk.execution_time.context import VariableAccessor
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    variables = {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)}
    try:
        return SandboxedEnvironment(undefined=StrictUndefined).from_string(value).render(var=variables)
    except Exception as exc:  # a template error, or a Variable that cannot be read: each source has its own
        log.warning("idbt: %r cannot be rendered when the DAG is parsed (%s): no Assets are declared", value, exc)
        raise ValueError(value) from exc


class _Assets:
    """One Airflow Asset per relation, shared by the task writing it and the tasks reading it.

    ``<namespace>/<database>/<schema>/<table>``: OpenLineage's dataset (namespace, name) as an Asset URI. An
    Asset is immutable, and building one (URI checks, access-control defaults) costs more than the rest of a
    task's arguments together, so each relation's is built once.
    """

    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace
        self._built: dict[str, Any] = {}

    def of(self, relations: Iterable[str]) -> list[Any]:
        return [self._built.get(relation) or self._build(relation) for relation in relations]

    def _build(self, relation: str) -> Any:
        from airflow.sdk import Asset

        asset = self._built[relation] = Asset(uri=f"{self.namespace}/{relation.replace('.', '/')}")
        return asset
