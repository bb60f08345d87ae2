"""End to end on PostgreSQL: the project's hooks run once per DAG run in their own first and last tasks, not once
per model task, through Airflow's executor path. With a new dbt process per task, the DAG wired by hand; with the
warm worker, the task group's default (run_hooks="auto"), which hoists on-run-start and keeps the on-run-end that
reads the results in every model task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.dbt.warm import stop_workers
from tests.fixtures.dbt_projects import REPO
from tests.fixtures.hooks_warehouse import END, LOG_QUERY, START, copy_hooks_project
from tests.fixtures.pg_warehouse import Identities, create_warehouse, drop_warehouse
from tests.fixtures.postgres import PrivateCluster

pytestmark = pytest.mark.e2e

# execution mode -> the DAG it runs, and the task id prefix of its tasks.
DAGS = {"subprocess": ("idbt_run_hooks", ""), "warm": ("idbt_run_hooks_group", "hooks.")}


@dataclass
class HooksRun:
    outcome: DagRunOutcome
    rows: list[tuple[str, str, str]]
    tables: list[str]
    home: Path
    secrets: list[str]
    mode: str

    @property
    def by_group(self) -> bool:
        return self.mode == "warm"

    def task(self, name: str) -> str:
        return DAGS[self.mode][1] + name


@pytest.fixture(scope="module", params=["subprocess", "warm"])
def hooks_run(
    request: pytest.FixtureRequest,
    pg_cluster: PrivateCluster,
    pg_identities: Identities,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HooksRun]:
    home = tmp_path_factory.mktemp(f"hooks-e2e-{request.param}")
    dags = home / "dags"
    dags.mkdir()
    (dags / "idbt_run_hooks.py").write_text((REPO / "tests/e2e/dags/idbt_run_hooks.py").read_text())
    database = f"idbt_hooks_e2e_{request.param}"
    create_warehouse(pg_cluster, database)
    try:
        env = {"IDBT_PG_PORT": str(pg_cluster.port), "IDBT_PG_DB": database, "IDBT_PG_USER": "svc_transformer"}
        project = copy_hooks_project(home / "idbt_hooks", "postgres", env)
        env.update(
            {
                "IDBT_ALLOW_DEV_IDP": "1",
                "IDBT_HOOKS_PROJECT_DIR": str(project),
                "AIRFLOW_CONN_IDBT_PG_TRANSFORMER": json.dumps(pg_identities.connection("svc_transformer")),
                "AIRFLOW__IDBT__EXECUTION_MODE": request.param,
                "IDBT_WARM_DIR": str(home / "warm"),
            }
        )
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            outcome = airflow.run_dag(DAGS[request.param][0])
        rows = [tuple(row) for row in pg_cluster.execute(LOG_QUERY.format(schema="analytics"), dbname=database)]
        tables = [
            row[0]
            for row in pg_cluster.execute(
                "select tablename from pg_tables where schemaname = 'analytics' order by 1", dbname=database
            )
        ]
        secrets = [*pg_identities.all_secrets(), pg_cluster.admin_password]
        yield HooksRun(outcome, rows, tables, home, secrets, request.param)
    finally:
        stop_workers(home / "warm")
        drop_warehouse(pg_cluster, database)


def test_every_task_succeeded(hooks_run: HooksRun) -> None:
    assert hooks_run.outcome.state == "success", hooks_run.outcome.output[-3000:]
    assert hooks_run.tables == ["idbt_invocation_log", "model_a", "model_b"]


def test_the_hooks_ran_once_per_dag_run_not_once_per_model(hooks_run: HooksRun) -> None:
    # One on-run-start set for the whole DAG run, from one dbt invocation, in dbt's order; by hand, one on-run-end
    # set too, and two model tasks ran without a single hook.
    hooks = [hook for _, hook, _ in hooks_run.rows]
    start_ids = {invocation for invocation, hook, _ in hooks_run.rows if hook in START}
    end_ids = {invocation for invocation, hook, _ in hooks_run.rows if hook in END}
    assert len(start_ids) == 1 and not start_ids & end_ids, hooks_run.rows
    if not hooks_run.by_group:
        assert hooks == [*START, *END], hooks_run.rows
        assert len(end_ids) == 1
        assert hooks_run.rows[-1][2] == ""  # the results reader saw no model results in the hooks task
        return
    # The task group: on-run-end reads the results, so each model task ran it on its own model's result.
    assert hooks == [*START, *END, *END], hooks_run.rows
    assert len(end_ids) == 2
    uploaded = {note for _, hook, note in hooks_run.rows if hook == "idbt_tracker.on-run-end.0"}
    assert uploaded == {"model.idbt_hooks.model_a", "model.idbt_hooks.model_b"}


def test_hook_tasks_log_their_identity_and_hooks(hooks_run: HooksRun) -> None:
    events = list(hooks_run.outcome.events())
    hook_tasks = [("on_run_start", "on-run-start")] + ([] if hooks_run.by_group else [("on_run_end", "on-run-end")])
    for name, hook_type in hook_tasks:
        task_id = hooks_run.task(name)
        ends = [e for e in events if e["kind"] == "model_run" and e["task_id"] == task_id and e["phase"] == "end"]
        assert ends and ends[-1]["status"] == "success", (task_id, ends)
        assert ends[-1]["identity"]["subject"] == "svc_transformer"
        assert ends[-1]["model"]["unique_id"] == f"operation.idbt_hooks.{hook_type}"
    logs = {task_id: path.read_text() for (task_id, _), path in hooks_run.outcome.task_logs().items()}
    assert set(logs) == {hooks_run.task(name) for name in ("model_a", "model_b")} | {
        hooks_run.task(name) for name, _ in hook_tasks
    }
    assert "operation.idbt_tracker.idbt_tracker-on-run-start-1" in logs[hooks_run.task("on_run_start")]
    for model in ("model_a", "model_b"):
        log = logs[hooks_run.task(model)]
        assert "idbt_tracker-on-run-start" not in log
        if hooks_run.by_group:
            assert "idbt_tracker-on-run-end-0" in log, log[-3000:]
        else:
            assert "hook: " not in log  # dbt prints "START hook: ..." for every hook it runs
    if hooks_run.by_group:
        assert "warm dbt worker cannot take this run" not in "\n".join(logs.values())


def test_no_token_or_secret_anywhere(hooks_run: HooksRun) -> None:
    needles = [secret.encode() for secret in hooks_run.secrets if secret]
    for path in [*(hooks_run.home / "airflow").rglob("*"), *(hooks_run.home / "warm").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"a secret leaked into {path}"
