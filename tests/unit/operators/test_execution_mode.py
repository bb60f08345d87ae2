"""Which runner a model task uses: its argument, then `[idbt] execution_mode`; warm never in a pod per task."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.operators.execution_mode import resolve_execution_mode


def test_argument_then_config_then_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__IDBT__EXECUTION_MODE", raising=False)
    assert resolve_execution_mode(None, "LocalExecutor") == ("subprocess", None)
    monkeypatch.setenv("AIRFLOW__IDBT__EXECUTION_MODE", "warm")
    assert resolve_execution_mode(None, "LocalExecutor") == ("warm", None)
    assert resolve_execution_mode("subprocess", "LocalExecutor") == ("subprocess", None)


def test_unknown_configured_mode_says_so_and_uses_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__IDBT__EXECUTION_MODE", "hot")
    mode, why = resolve_execution_mode(None, "LocalExecutor")
    assert mode == "subprocess" and why is not None and "'hot' is not one of subprocess, warm" in why


def test_warm_is_not_offered_on_the_kubernetes_executor() -> None:
    mode, why = resolve_execution_mode("warm", "KubernetesExecutor")
    assert mode == "subprocess" and why is not None and "KubernetesExecutor" in why
    assert resolve_execution_mode("warm", "CeleryExecutor") == ("warm", None)


def test_operator_refuses_an_unknown_mode() -> None:
    from airflow_provider_idbt import DbtIdentityOperator

    with pytest.raises(ValueError, match="execution_mode must be one of subprocess, warm"):
        DbtIdentityOperator(
            task_id="m",
            model="m",
            project_dir="/p",
            manifest_path="/p/target/manifest.json",
            identity_conn_id="c",
            profile_args={"type": "duckdb", "path": "w.duckdb"},
            execution_mode="hot",
        )
