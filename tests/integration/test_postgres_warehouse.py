"""Real dbt on a private scram-sha-256 PostgreSQL: token as password, SET ROLE, identity comments, classified errors."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.dbt.failures import failure_for, may_refresh_and_rerun
from airflow_provider_idbt.dbt.json_log import DbtLogSummary, read_dbt_log
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.query_comment import (
    QueryCommentOptions,
    query_comment_fields,
    render_query_comment,
)
from airflow_provider_idbt.dbt.results import RunResult
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.errors import PermissionMismatch, WarehouseAuthFailed
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV, TOKEN_ENV_VAR
from tests.fixtures.pg_warehouse import (
    Identities,
    copy_pg_project,
    create_warehouse,
    drop_warehouse,
    pg_profile_args,
)
from tests.fixtures.postgres import PrivateCluster
from tests.fixtures.proc import exposed_in_proc

pytestmark = pytest.mark.integration

DB = "idbt_it"
SLOW_MODEL = "{{ config(materialized='table') }}\nselect 1 as id from (select pg_sleep(60)) as pause\n"


@dataclass
class Run:
    result: RunResult
    log: DbtLogSummary
    lines: list[str] = field(default_factory=list)


@dataclass
class Warehouse:
    cluster: PrivateCluster
    identities: Identities
    project: Path
    root: Path
    runs: int = 0

    def token(self, subject: str) -> str:
        return self.identities.idp.issue_token(self.identities.idp.clients[subject])

    def invocation(self, subject: str, role: str, select: str, comment: dict[str, Any]) -> DbtInvocation:
        self.runs += 1
        where = self.root / f"run{self.runs}"
        args = pg_profile_args(self.cluster, DB, subject)
        adapter = args.pop("type")
        profiles = write_profiles_dir(render_profile(adapter, {**args, "role": role}, "idbt_pg", "t"), where / "p")
        return DbtInvocation(
            project_dir=str(self.project),
            profiles_dir=str(profiles),
            select=select,
            target_path=str(where / "target"),
            log_path=str(where / "logs"),
            env={QUERY_COMMENT_ENV: render_query_comment(comment)},
        )

    def run(self, invocation: DbtInvocation, token: str, runner: SubprocessRunner | None = None) -> Run:
        lines: list[str] = []
        result = (runner or SubprocessRunner()).run(invocation, {TOKEN_ENV_VAR: token}, lines.append)
        return Run(result, read_dbt_log(invocation.log_path, None), lines)


def _identity(subject: str, *groups: str) -> IdentityContext:
    return IdentityContext("http://127.0.0.1", subject, datetime(2030, 1, 1, tzinfo=UTC), "sha256:t", groups=groups)


def _comment(subject: str, model: str, run_id: str = "manual__it") -> dict[str, Any]:
    keys = {"dag_id": "it", "run_id": run_id, "task_id": model, "try_number": 1, "map_index": -1}
    return query_comment_fields(keys, f"model.idbt_pg.{model}", _identity(subject), QueryCommentOptions())


@pytest.fixture(scope="module")
def warehouse(
    pg_cluster: PrivateCluster, pg_identities: Identities, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    root = tmp_path_factory.mktemp("pg_it")
    create_warehouse(pg_cluster, DB)
    try:
        project = copy_pg_project(root / "idbt_pg")
        # Unknown to the manifest on purpose: dbt parses it at run time, only the /proc test selects it.
        (project / "models" / "staging" / "slow_probe.sql").write_text(SLOW_MODEL)
        yield Warehouse(pg_cluster, pg_identities, project, root)
    finally:
        drop_warehouse(pg_cluster, DB)


def test_running_model_shows_identity_hides_token_and_a_kill_cancels_it(warehouse: Warehouse) -> None:
    token = warehouse.token("svc_transformer")
    invocation = warehouse.invocation(
        "svc_transformer", "transformer", "slow_probe", _comment("svc_transformer", "slow_probe")
    )
    runner = SubprocessRunner()
    started = threading.Event()
    results: list[RunResult] = []

    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if "START sql table model analytics.slow_probe" in line:
            started.set()

    thread = threading.Thread(
        target=lambda: results.append(runner.run(invocation, {TOKEN_ENV_VAR: token}, on_line)), daemon=True
    )
    thread.start()
    try:
        assert started.wait(60)
        pid = runner.pid
        assert pid is not None
        assert exposed_in_proc(pid, token, TOKEN_ENV_VAR) == []
        assert b"worker.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
        rows: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + 20
        while not rows and time.monotonic() < deadline:
            rows = warehouse.cluster.execute(
                "select usename, query from pg_stat_activity "
                "where usename = 'svc_transformer' and query like '%pg_sleep%'",
                dbname=DB,
            )
            time.sleep(0.2)
        assert rows, "the model's statement never showed in pg_stat_activity"
        comment = json.loads(re.search(r"/\* (\{.*?\}) \*/", rows[0][1]).group(1))  # type: ignore[union-attr]
        assert comment["sub"] == "svc_transformer" and comment["model"] == "model.idbt_pg.slow_probe"
        assert token not in rows[0][1]
        # on_kill's path: the runner asks dbt to stop, and dbt cancels the statement in the warehouse.
        before = warehouse.cluster.log_size()
        stopped = time.monotonic()
        runner.terminate(grace_seconds=20)
        thread.join(30)
        left = warehouse.cluster.execute(
            "select pid from pg_stat_activity where usename = 'svc_transformer' and query like '%pg_sleep%' "
            "and state = 'active'",
            dbname=DB,
        )
        assert left == [], ("the statement kept running after the kill", lines[-15:])
        assert time.monotonic() - stopped < 20  # the 60 s pg_sleep was cut short, not waited out
        assert "canceling statement due to user request" in warehouse.cluster.log_since(before)
        assert results and results[0].status != "success"
    finally:
        runner.terminate(grace_seconds=5)
        thread.join(30)


def test_set_role_from_identity_builds_the_model(warehouse: Warehouse) -> None:
    before = warehouse.cluster.log_size()
    hostile = "manual__x */ select pg_sleep(9); /* y"
    comment = _comment("svc_transformer", "stg_customers", run_id=hostile)
    run = warehouse.run(
        warehouse.invocation("svc_transformer", "transformer", "stg_customers", comment),
        warehouse.token("svc_transformer"),
    )
    assert run.result.status == "success", run.lines[-20:]
    owner = warehouse.cluster.execute(
        "select tableowner from pg_tables where schemaname = 'analytics' and tablename = 'stg_customers'", dbname=DB
    )
    assert owner == [("transformer",)]  # created under SET ROLE, not as the login role
    log = warehouse.cluster.log_since(before)
    assert "statement: set role transformer" in log
    created = [block for block in log.split("\n20") if "user=svc_transformer" in block and "create  table" in block]
    assert created, log[-2000:]
    found = json.loads(re.search(r"/\* (\{.*?\}) \*/", created[0]).group(1))  # type: ignore[union-attr]
    assert found["run_id"] == hostile and found["sub"] == "svc_transformer"
    assert "pg_sleep(9)" not in log.replace(json.dumps(hostile)[1:-1].replace("*", "\\u002a"), "")


def test_expired_or_wrong_token_is_an_auth_failure_before_any_model_statement(warehouse: Warehouse) -> None:
    warehouse.token("svc_intern")  # the role's password is now a token we do not pass
    run = warehouse.run(
        warehouse.invocation("svc_intern", "intern_role", "stg_customers", _comment("svc_intern", "stg_customers")),
        "an-old-token",
    )
    assert run.result.status == "invocation_error"
    uid = "model.idbt_pg.stg_customers"
    log = read_dbt_log(warehouse.root / f"run{warehouse.runs}" / "logs", uid)
    assert log.found and log.model_statements == 0
    assert may_refresh_and_rerun(run.result, log, "postgres")
    error = failure_for(uid, _identity("svc_intern"), run.result, log, "postgres", refreshed=True)
    assert isinstance(error, WarehouseAuthFailed) and error.retryable
    assert "password authentication failed" in str(error)
    assert "an-old-token" not in "\n".join(run.lines)


def test_missing_select_grant_is_a_permission_mismatch_with_the_warehouse_message(warehouse: Warehouse) -> None:
    uid = "model.idbt_pg.stg_payments"
    run = warehouse.run(
        warehouse.invocation("svc_intern", "intern_role", "stg_payments", _comment("svc_intern", "stg_payments")),
        warehouse.token("svc_intern"),
    )
    assert run.result.status == "error"
    log = read_dbt_log(warehouse.root / f"run{warehouse.runs}" / "logs", uid)
    assert log.model_statements >= 1 and not may_refresh_and_rerun(run.result, log, "postgres")
    error = failure_for(uid, _identity("svc_intern", "interns"), run.result, log, "postgres")
    assert isinstance(error, PermissionMismatch) and not error.retryable
    assert error.required == ("table payments",)
    assert "permission denied for table payments" in (error.warehouse_message or "")


def test_documented_profile_snippet_runs_a_model_with_the_token_and_the_role(warehouse: Warehouse) -> None:
    """docs/warehouses/postgres.md's profiles.yml as a user would write it, pointed at this cluster."""
    import yaml

    from airflow_provider_idbt.warehouses.postgres import PROFILE_SNIPPET
    from airflow_provider_idbt.warehouses.spec import WAREHOUSE_ROLE_ENV

    ((_, profile),) = yaml.safe_load(PROFILE_SNIPPET).items()
    output = profile["outputs"][profile["target"]]
    output.pop("sslmode")  # the private cluster listens without TLS
    output.update({"host": "127.0.0.1", "port": warehouse.cluster.port, "user": "svc_transformer", "dbname": DB})
    where = warehouse.root / "snippet"
    before = warehouse.cluster.log_size()
    invocation = DbtInvocation(
        project_dir=str(warehouse.project),
        profiles_dir=str(write_profiles_dir({"idbt_pg": profile}, where / "p")),
        select="stg_orders",
        target_path=str(where / "target"),
        log_path=str(where / "logs"),
        env={
            QUERY_COMMENT_ENV: render_query_comment(_comment("svc_transformer", "stg_orders")),
            WAREHOUSE_ROLE_ENV: "transformer",
        },
    )
    run = warehouse.run(invocation, warehouse.token("svc_transformer"))
    assert run.result.status == "success", run.lines[-20:]
    assert "statement: set role transformer" in warehouse.cluster.log_since(before)
