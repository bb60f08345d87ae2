"""End to end: the example DAG and a bad-input DAG run by Airflow's executor with supervised task processes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow, free_port
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt
from tests.fixtures.pg_warehouse import copy_pg_project

pytestmark = pytest.mark.e2e

AUDIENCE = "idbt-e2e"


@dataclass
class E2ERun:
    home: Path
    project: Path
    warehouse: Path
    example: DagRunOutcome
    bad_input: DagRunOutcome
    commands: DagRunOutcome
    secrets: list[str]


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ERun]:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    home = tmp_path_factory.mktemp("e2e")
    dags = home / "dags"
    dags.mkdir()
    copied = copy_project(EXAMPLE_PROJECT, dags / "example_project")
    project, warehouse = copied.project_dir, copied.duckdb_path
    shutil.copy(REPO / "dags" / "idbt_example.py", dags)
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_bad_input.py", dags)
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_commands.py", dags)
    pg_project = copy_pg_project(home / "idbt_pg")
    secret = os.urandom(16).hex()
    client = DevClient(
        client_id="e2e-runner",
        client_secret=secret,
        subject="svc-e2e-runner",
        groups=("analytics",),
        audiences=(AUDIENCE,),
    )
    with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:

        def conn(host: str) -> str:
            return json.dumps(idp.connection(client, host=host))

        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_DUCKDB_PATH": str(warehouse),
            "IDBT_EXAMPLE_PROJECT_DIR": str(project),
            "AIRFLOW_CONN_IDBT_DEV": conn(idp.issuer),
            "AIRFLOW_CONN_IDBT_UNREACHABLE": conn(f"http://127.0.0.1:{free_port()}"),
            "IDBT_PG_PROJECT_DIR": str(pg_project),
            "IDBT_CLOSED_PORT": str(free_port()),
        }
        run_dbt(project, "parse", env=env)
        run_dbt(project, "seed", env=env)
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
            example = airflow.run_dag("idbt_example")
            bad_input = airflow.run_dag("idbt_bad_input")
            commands = airflow.run_dag("idbt_commands")
        issued = list(idp.issued_tokens)
    yield E2ERun(
        home=home,
        project=project,
        warehouse=warehouse,
        example=example,
        bad_input=bad_input,
        commands=commands,
        secrets=[*issued, secret],
    )


def _events(outcome: DagRunOutcome, kind: str) -> list[dict]:
    return [event for event in outcome.events() if event["kind"] == kind]


def test_every_model_ran_and_built_its_table(e2e_run: E2ERun) -> None:
    import duckdb

    assert e2e_run.example.state == "success", e2e_run.example.output[-3000:]
    manifest = json.loads((e2e_run.project / "target" / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) >= 3
    with duckdb.connect(str(e2e_run.warehouse), read_only=True) as con:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
    for node in models:
        assert node["alias"] in tables, f"{node['unique_id']} has no table"


def test_each_model_task_logged_start_and_end_with_identity(e2e_run: E2ERun) -> None:
    runs = _events(e2e_run.example, "model_run")
    task_ids = {key[0] for key in e2e_run.example.task_logs()}
    assert task_ids, "no task logs found"
    for task_id in task_ids:
        mine = [e for e in runs if e["task_id"] == task_id]
        phases = [e["phase"] for e in mine]
        assert phases.count("start") >= 1 and phases.count("end") >= 1, (task_id, phases)
        end = next(e for e in mine if e["phase"] == "end")
        assert end["status"] == "success"
        assert end["identity"]["subject"] == "svc-e2e-runner"
        assert end["identity"]["fingerprint"].startswith("sha256:")
        assert end["dag_id"] == "idbt_example" and end["run_id"] == e2e_run.example.run_id
        # A model or seed task writes its relation; a test task (`<node>__test`) only reads what it tests.
        if task_id.endswith("__test"):
            assert end["model"]["inputs"] and not end["model"]["outputs"], end["model"]
        else:
            assert end["model"]["outputs"]


def test_every_task_got_its_own_token(e2e_run: E2ERun) -> None:
    issued = _events(e2e_run.example, "token_issued")
    assert len({e["task_id"] for e in issued}) == len(e2e_run.example.task_logs())
    # A fresh process per task means a fresh token per task: no token is shared between two tasks.
    assert len({e["identity"]["fingerprint"] for e in issued}) == len(issued)


def test_listener_logged_lifecycle_of_provider_tasks(e2e_run: E2ERun) -> None:
    lifecycle = _events(e2e_run.example, "task_lifecycle")
    phases = {(e["task_id"], e["phase"]) for e in lifecycle}
    for task_id, _try in e2e_run.example.task_logs():
        assert (task_id, "running") in phases and (task_id, "success") in phases


def test_no_token_or_secret_anywhere(e2e_run: E2ERun) -> None:
    assert len(e2e_run.secrets) > len(e2e_run.example.task_logs()), "the scan needs the real issued tokens"
    needles = [s.encode() for s in e2e_run.secrets]
    scanned = 0
    for path in e2e_run.home.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        scanned += 1
        for needle in needles:
            assert needle not in data, f"a secret leaked into {path.relative_to(e2e_run.home)}"
    for text in (e2e_run.example.output, e2e_run.bad_input.output, e2e_run.commands.output):
        for secret in e2e_run.secrets:
            assert secret not in text
    assert scanned > 20


def _tries(outcome: DagRunOutcome, task_id: str) -> list[int]:
    return sorted(t for (tid, t) in outcome.task_logs() if tid == task_id)


def _failed_event(outcome: DagRunOutcome, task_id: str) -> dict:
    return next(e for e in _events(outcome, "task_lifecycle") if e["task_id"] == task_id and e["phase"] == "failed")


def test_missing_connection_fails_fast_with_a_clear_message(e2e_run: E2ERun) -> None:
    assert e2e_run.bad_input.state == "failed"
    assert _tries(e2e_run.bad_input, "missing_connection") == [1]
    event = _failed_event(e2e_run.bad_input, "missing_connection")
    assert "no_such_conn" in event["error_message"]


def test_unknown_model_fails_fast_and_suggests_the_right_name(e2e_run: E2ERun) -> None:
    assert _tries(e2e_run.bad_input, "unknown_model") == [1]
    event = _failed_event(e2e_run.bad_input, "unknown_model")
    assert "stg_custmers" in event["error_message"] and "stg_customers" in event["error_message"]


def test_unreachable_idp_is_retried_then_fails(e2e_run: E2ERun) -> None:
    assert _tries(e2e_run.bad_input, "idp_unreachable") == [1, 2]
    failures = [e for e in _events(e2e_run.bad_input, "auth_failure") if e["task_id"] == "idp_unreachable"]
    assert failures and failures[0]["error_class"] == "IdentityProviderUnavailable"


def test_adapter_missing_names_the_extra_before_any_token(e2e_run: E2ERun) -> None:
    assert _tries(e2e_run.bad_input, "adapter_missing") == [1]
    event = _failed_event(e2e_run.bad_input, "adapter_missing")
    assert "adapter `snowflake` is not installed" in event["error_message"]
    assert "airflow-provider-idbt[snowflake]" in event["error_message"] and "dbt_python" in event["error_message"]
    issued = [e for e in _events(e2e_run.bad_input, "token_issued") if e["task_id"] == "adapter_missing"]
    assert issued == [], "a token was minted for a task that could never run"


def test_missing_target_fails_fast_and_lists_the_targets(e2e_run: E2ERun) -> None:
    assert _tries(e2e_run.bad_input, "missing_target") == [1]
    message = _failed_event(e2e_run.bad_input, "missing_target")["error_message"]
    assert "no target `prod`" in message and "dev" in message


def test_unreachable_warehouse_is_retried_with_a_clear_message(e2e_run: E2ERun) -> None:
    assert _tries(e2e_run.bad_input, "warehouse_unreachable") == [1, 2]
    message = _failed_event(e2e_run.bad_input, "warehouse_unreachable")["error_message"]
    assert message.startswith("WarehouseUnreachable: the warehouse could not be reached for model")
    assert "check host, port" in message


def _xcom_results(e2e_run: E2ERun, dag_id: str) -> dict[str, dict]:
    import sqlite3

    with sqlite3.connect(e2e_run.home / "airflow" / "airflow.db") as db:
        rows = db.execute(
            "select task_id, value from xcom where dag_id = ? and key = 'return_value'", (dag_id,)
        ).fetchall()
    results = {}
    for task_id, value in rows:
        decoded = json.loads(value)
        results[task_id] = json.loads(decoded) if isinstance(decoded, str) else decoded
    return results


def test_each_command_runs_its_node_and_returns_one_result_object(e2e_run: E2ERun) -> None:
    assert e2e_run.commands.state == "success", e2e_run.commands.output[-3000:]
    results = _xcom_results(e2e_run, "idbt_commands")
    assert set(results) == {"seed_orders", "build_order_totals", "test_customer_orders"}
    seed = results["seed_orders"]
    assert seed["command"] == "seed" and seed["resource_type"] == "seed" and seed["status"] == "success"
    assert seed["model"] == "seed.idbt_example.orders" and seed["relation"].endswith(".orders")
    assert seed["rows_affected"] == sum(1 for _ in (e2e_run.project / "seeds" / "orders.csv").open()) - 1
    assert seed["subject"] == "svc-e2e-runner" and seed["token_fingerprint"].startswith("sha256:")
    build = results["build_order_totals"]
    assert build["command"] == "build" and build["node_status"] == "success"
    assert sorted(t["unique_id"].split(".")[2].split("_order_totals")[0] for t in build["tests"]) == [
        "not_null",
        "unique",
    ]
    assert all(t["status"] == "pass" for t in build["tests"])
    tested = results["test_customer_orders"]
    assert tested["command"] == "test" and tested["node_status"] is None and len(tested["tests"]) >= 2
    assert all(t["status"] == "pass" for t in tested["tests"])
    for result in results.values():
        assert set(result) >= {"status", "duration_s", "adapter_response", "token_expires_at", "issuer"}


def test_templated_full_refresh_reached_dbt(e2e_run: E2ERun) -> None:
    import sqlite3

    with sqlite3.connect(e2e_run.home / "airflow" / "airflow.db") as db:
        (rendered,) = db.execute(
            "select rendered_fields from rendered_task_instance_fields where dag_id = 'idbt_commands' "
            "and task_id = 'seed_orders'"
        ).fetchone()
    assert json.loads(rendered)["full_refresh"] in ("True", True)
    logs = {task_id: path.read_text() for (task_id, _), path in e2e_run.commands.task_logs().items()}
    assert "idbt: dbt seed --select fqn:idbt_example.orders" in logs["seed_orders"]
    assert logs["seed_orders"].count("--full-refresh") >= 1
    assert "--full-refresh" not in logs["build_order_totals"]
