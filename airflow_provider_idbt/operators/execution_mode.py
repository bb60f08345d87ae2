"""Which runner a model task uses: its `execution_mode`, else `[idbt] execution_mode`; never warm in a pod per task."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.runner import SubprocessRunner

CONFIG_SECTION = "idbt"
CONFIG_KEY = "execution_mode"
MODES = ("subprocess", "warm")


def _configured() -> str:
    from airflow.configuration import conf

    return str(conf.get(CONFIG_SECTION, CONFIG_KEY, fallback="") or "").strip().lower()


def _executor(task_executor: str | None) -> str:
    if task_executor:
        return task_executor
    from airflow.configuration import conf

    return str(conf.get("core", "executor", fallback="") or "")


def resolve_execution_mode(requested: str | None, task_executor: str | None = None) -> tuple[str, str | None]:
    """The mode to use and, when it is not the one asked for, why (for one warning line in the task log)."""
    mode = requested or _configured() or "subprocess"
    if mode not in MODES:
        return "subprocess", (
            f"[{CONFIG_SECTION}] {CONFIG_KEY} = {mode!r} is not one of {', '.join(MODES)}; using subprocess"
        )
    if mode == "warm" and "KubernetesExecutor" in _executor(task_executor).split(",")[0]:
        # One pod per task: a worker started by one task would die with its pod and serve nobody.
        return "subprocess", "execution_mode warm is not offered on the KubernetesExecutor; using subprocess"
    return mode, None


def make_runner(
    requested: str | None,
    task_executor: str | None,
    manifest_path: str,
    adapter: str | None,
    warn: Callable[[str], None],
) -> SubprocessRunner:
    """The runner for one try: a new dbt process, or this host's warm worker (which falls back to one)."""
    from airflow_provider_idbt.dbt.runner import SubprocessRunner
    from airflow_provider_idbt.dbt.warm import WarmRunner

    mode, why = resolve_execution_mode(requested, task_executor)
    if why:
        warn(f"idbt: {why}")
    if mode != "warm":
        return SubprocessRunner()

    def fell_back(reason: str) -> None:
        warn(f"idbt: the warm dbt worker cannot take this run ({reason}); running dbt in a new process")

    return WarmRunner(manifest_path, adapter=adapter, on_fallback=fell_back)
