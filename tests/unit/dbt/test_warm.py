"""The warm runner's pure parts: which worker a run goes to, the private directory, one protocol on both sides."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt import warm
from airflow_provider_idbt.dbt.runner import DbtInvocation
from airflow_provider_idbt.dbt.warm import WarmSettings, WarmUnavailable, private_directory, worker_key

BASE = DbtInvocation(
    project_dir="/srv/dbt/analytics",
    profiles_dir="/tmp/idbt-try-1/profiles",
    select="fqn:analytics.orders",
    target_path="/tmp/t",
    log_path="/tmp/l",
)


def test_one_worker_per_project_manifest_and_parse_time_settings() -> None:
    key = worker_key(BASE, "/srv/dbt/analytics/target/manifest.json", "postgres")
    # A new private profiles directory per try, another model, another token: the same worker.
    assert (
        worker_key(
            replace(BASE, profiles_dir="/tmp/idbt-try-2/p", select="x"),
            BASE.project_dir + "/target/manifest.json",
            "postgres",
        )
        == key
    )
    for changed in (
        replace(BASE, vars={"day": "2026-01-01"}),
        replace(BASE, target="prod"),
        replace(BASE, profile_name="other"),
        replace(BASE, project_dir="/srv/dbt/finance"),
        replace(BASE, python="/opt/dbt-venv/bin/python"),
    ):
        assert worker_key(changed, "/srv/dbt/analytics/target/manifest.json", "postgres") != key
    assert worker_key(BASE, "/srv/dbt/analytics/target/manifest.json", "duckdb") != key


def test_private_directory_is_created_0700_and_an_open_one_refused(tmp_path: Path) -> None:
    made = private_directory(tmp_path / "warm")
    assert made.stat().st_mode & 0o777 == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    with pytest.raises(WarmUnavailable, match="mode 0700"):
        private_directory(open_dir)


def test_default_directory_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(warm.WARM_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert WarmSettings.default().directory == Path(f"/run/user/1000/idbt-warm-{os.getuid()}")
    monkeypatch.setenv(warm.WARM_DIR_ENV, "/var/run/idbt")
    assert WarmSettings.default().directory == Path("/var/run/idbt")


def test_client_and_worker_speak_the_same_protocol() -> None:
    spec = importlib.util.spec_from_file_location("idbt_warm_server_probe", warm.WARM_SERVER)
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = server  # its dataclasses look their module up
    spec.loader.exec_module(server)
    assert (server.PROTOCOL, server.TRAILER) == (warm.PROTOCOL, warm.TRAILER)


def test_worker_pids_come_from_the_ready_lines(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("dbt says hello\nidbt warm worker: ready, pid 4242, /run/x/a.sock\n")
    (tmp_path / "b.log").write_text("idbt warm worker: dbt parse failed: ...\n")
    assert warm.worker_pids(tmp_path) == [4242]
