"""End to end: the "Model runs" rows and the audit export of real supervised runs (scheduler, LocalExecutor,
PostgreSQL metadata) on a permissioned PostgreSQL warehouse: a success, a refusal by GRANTs, a refusal by meta, a
failure that passes its retry; then `idbt audit` after an in-process `airflow dags test`, which writes no task log.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.fixtures.dbt_projects import REPO
from tests.fixtures.leak_scan import scan_files_for_secrets

# Its fixtures' asserts are rewritten too, though this module imports it before pytest_plugins registers it.
pytest.register_assert_rewrite("tests.fixtures.model_runs_airflow")
from tests.fixtures.model_runs_airflow import (  # noqa: E402
    DAG_ID,
    EXPECTED_TRIES,
    IDBT,
    TEAM_B_DAG_ID,
    ModelRunsAirflow,
    rows_json,
)

# The deployment fixture (model_runs_airflow) and its auth-manager setting (model_runs_auth_manager).
pytest_plugins = ["tests.fixtures.model_runs_airflow"]
pytestmark = pytest.mark.e2e

Rows = dict[tuple[str, int], dict[str, Any]]


@pytest.fixture(scope="module")
def rows(model_runs_airflow: ModelRunsAirflow) -> Rows:
    found = rows_json(model_runs_airflow, {"dag_id": DAG_ID, "run_id": model_runs_airflow.run_id})
    return {(r["task_id"], r["try_number"]): r for r in found}


def test_one_row_per_try_of_each_model_task(model_runs_airflow: ModelRunsAirflow, rows: Rows) -> None:
    assert model_runs_airflow.runs[DAG_ID].state == "failed"  # the refusals fail the run
    expected = {(task, n) for task, tries in EXPECTED_TRIES.items() for n in range(1, tries + 1)}
    assert set(rows) == expected, sorted(rows)
    assert {r["dag_id"] for r in rows.values()} == {DAG_ID}


def test_a_success_names_identity_token_role_and_relations(rows: Rows) -> None:
    row = rows[("customers", 1)]
    assert (row["outcome"], row["state"], row["source"]) == ("success", "success", "events")
    assert (row["subject"], row["groups"], row["warehouse_role"]) == ("svc_transformer", ["analytics"], "transformer")
    assert row["issuer"].startswith("http://127.0.0.1:") and row["token_fingerprint"].startswith("sha256:")
    assert datetime.fromisoformat(row["token_expires_at"]) > datetime.fromisoformat(row["start_date"])
    assert row["model"] == "model.idbt_pg.stg_customers"
    # Relations as the manifest names them: its database is the parse profile's (tests/fixtures/pg_project).
    assert (row["inputs"], row["outputs"]) == (["idbt_wh.raw.customers"], ["idbt_wh.analytics.stg_customers"])
    assert row["namespace"].startswith("postgres://127.0.0.1:") and row["duration_s"] > 0 and row["hostname"]


def test_a_refusal_by_grants_carries_the_warehouses_own_message(rows: Rows) -> None:
    row = rows[("intern_payments", 1)]
    assert (row["outcome"], row["state"], row["stage"]) == ("permission_mismatch", "failed", "warehouse")
    assert row["subject"] == "svc_intern" and row["warehouse_role"] == "intern_role"
    assert "permission denied for table payments" in row["warehouse_message"]
    assert row["required"] == ["table payments"]


def test_a_refusal_by_meta_names_what_was_required(rows: Rows) -> None:
    row = rows[("auditor_finance", 1)]
    assert (row["outcome"], row["stage"], row["subject"]) == ("permission_mismatch", "preflight", "svc_auditor")
    assert row["required"] == ["role:finance_admin"] and row["warehouse_role"] is None


def test_both_tries_of_the_retried_task_one_from_history(rows: Rows) -> None:
    first, second = rows[("flaky_orders", 1)], rows[("flaky_orders", 2)]
    assert first["source"] == "history" and first["subject"] is None  # its events are in its log only
    assert first["state"] in ("failed", "up_for_retry") and first["outcome"] == f"task {first['state']}"
    assert first["model"] == second["model"] == "model.idbt_pg.flaky_orders"
    assert first["start_date"] < second["start_date"]
    assert (second["source"], second["outcome"], second["subject"]) == ("events", "success", "svc_transformer")


def test_the_task_instance_view_reads_earlier_tries_from_their_logs(model_runs_airflow: ModelRunsAirflow) -> None:
    code = (
        "import json\n"
        "from airflow_provider_idbt.ui.model_runs import as_record\n"
        "from airflow_provider_idbt.ui.run_store import task_instance_runs\n"
        f"runs = task_instance_runs({DAG_ID!r}, {model_runs_airflow.run_id!r}, 'flaky_orders', -1, with_logs=True)\n"
        "print('@@' + json.dumps([as_record(r) for r in runs]))\n"
    )
    first, second = json.loads(model_runs_airflow.python(code).rsplit("@@", 1)[1])
    assert (first["try_number"], first["source"], first["outcome"]) == (1, "log", "error")
    assert first["subject"] == "svc_transformer" and "division by zero" in first["error_message"]
    assert (second["try_number"], second["source"], second["outcome"]) == (2, "events", "success")
    assert first["token_fingerprint"].startswith("sha256:") and second["token_fingerprint"].startswith("sha256:")
    assert first["warehouse_role"] == second["warehouse_role"] == "transformer"


def test_rows_are_restricted_to_the_dags_a_user_may_read(model_runs_airflow: ModelRunsAirflow) -> None:
    code = (
        "import json\n"
        "from sqlalchemy import event\n"
        "from airflow.settings import engine\n"
        "from airflow_provider_idbt.ui.model_runs import RunFilter\n"
        "from airflow_provider_idbt.ui.run_store import model_runs\n"
        "statements = []\n"
        "event.listen(engine, 'before_cursor_execute', lambda *a: statements.append(a[2]))\n"
        f"team_b = model_runs(RunFilter(), dag_ids={{{TEAM_B_DAG_ID!r}}})\n"
        "queries = len(statements)\n"
        "none = model_runs(RunFilter(), dag_ids=set())\n"
        "print('@@' + json.dumps([sorted({r.dag_id for r in team_b}), len(none), queries, len(statements)]))\n"
    )
    dags, none, queries, after = json.loads(model_runs_airflow.python(code).rsplit("@@", 1)[1])
    assert dags == [TEAM_B_DAG_ID] and none == 0
    assert queries <= 3, f"a page should take a few queries, took {queries}"  # task instances, history (+ a ping)
    assert after == queries, "no DAG allowed: no query at all"


def _period(model_runs_airflow: ModelRunsAirflow) -> tuple[str, str]:
    start = min(run.queued for run in model_runs_airflow.runs.values()).replace(tzinfo=UTC) - timedelta(minutes=1)
    return start.isoformat(timespec="seconds"), (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")


def _python_export(model_runs_airflow: ModelRunsAirflow, params: dict[str, str], fmt: str) -> bytes:
    """What the view's export sends for the same filter: ``to_csv``/``to_json`` of ``export_rows``, as bytes."""
    out = model_runs_airflow.home / f"view-export.{fmt}"
    code = (
        "from pathlib import Path\n"
        "from airflow_provider_idbt.ui.model_runs import parse_filter, to_csv, to_json\n"
        "from airflow_provider_idbt.ui.run_store import export_rows\n"
        f"rows = export_rows(parse_filter({params!r}))\n"
        f"Path({str(out)!r}).write_bytes({'to_csv' if fmt == 'csv' else 'to_json'}(rows).encode())\n"
    )
    model_runs_airflow.python(code)
    return out.read_bytes()


@pytest.mark.parametrize(
    "extra", [{}, {"dag_id": TEAM_B_DAG_ID}, {"identity": "svc_intern"}], ids=["all", "dag", "identity"]
)
def test_the_cli_export_equals_the_views_export(
    model_runs_airflow: ModelRunsAirflow, tmp_path: Path, extra: dict[str, str]
) -> None:
    since, until = _period(model_runs_airflow)
    params = {"since": since, "until": until, **extra}
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in params.items()]
    exports = {}
    for fmt in ("csv", "json"):
        out = tmp_path / f"export.{fmt}"
        done = model_runs_airflow.idbt("audit", *flags, "--format", fmt, "--output", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        exports[fmt] = out.read_bytes()
        assert exports[fmt] == _python_export(model_runs_airflow, params, fmt)
    table = list(csv.DictReader(io.StringIO(exports["csv"].decode(), newline="")))
    records = json.loads(exports["json"])
    assert [(r["dag_id"], r["task_id"], r["try_number"]) for r in records] == [
        (r["dag_id"], r["task_id"], int(r["try_number"])) for r in table
    ]
    if not extra:
        assert {r["dag_id"] for r in records} >= {DAG_ID, TEAM_B_DAG_ID} and len(records) >= 6
    elif "dag_id" in extra:
        assert {(r["task_id"], r["outcome"]) for r in records} >= {("orders", "success")}
        assert {r["dag_id"] for r in records} == {TEAM_B_DAG_ID}
    else:
        assert [(r["task_id"], r["outcome"]) for r in records] == [("intern_payments", "permission_mismatch")]


def test_the_export_goes_to_standard_output_clean(model_runs_airflow: ModelRunsAirflow) -> None:
    since, until = _period(model_runs_airflow)
    done = subprocess.run(
        [IDBT, "audit", "--since", since, "--until", until, "--dag-id", DAG_ID],
        env=model_runs_airflow.env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    params = {"since": since, "until": until, "dag_id": DAG_ID}
    assert done.stdout == _python_export(model_runs_airflow, params, "csv")


def test_a_runs_trail_still_prints_and_is_complete(model_runs_airflow: ModelRunsAirflow) -> None:
    done = model_runs_airflow.idbt("audit", "--dag-id", DAG_ID, "--run-id", model_runs_airflow.run_id, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    models = {m["task_id"]: m for m in report["models"]}
    assert set(models) == set(EXPECTED_TRIES) and report["complete"]
    assert [t["events_from"] for t in models["flaky_orders"]["tries"]] == ["log", "log"]
    assert models["customers"]["tries"][0]["warehouse_role"] == "transformer"


def test_each_task_instance_keeps_its_last_tries_events_in_xcom(model_runs_airflow: ModelRunsAirflow) -> None:
    found = model_runs_airflow.airflow.query(
        "select task_id, value from xcom where dag_id = :d and key = 'idbt_events'", d=DAG_ID
    )
    values = {task_id: value if isinstance(value, list) else json.loads(value) for task_id, value in found}
    assert set(values) == set(EXPECTED_TRIES)
    assert {e["try_number"] for e in values["flaky_orders"]} == {2}  # Airflow cleared try 1's at try 2
    kinds = [e["kind"] for e in values["intern_payments"]]
    assert "permission_mismatch" in kinds and kinds[-1] == "model_run"
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for task_id, events in values.items():
        for event in events:
            assert not [e.message for e in validator.iter_errors(event)], (task_id, event)
    starts = [e for e in values["customers"] if e["kind"] == "model_run" and e["phase"] == "start"]
    assert [e["warehouse_role"] for e in starts] == ["transformer"]


def test_no_token_or_secret_in_the_metadata_database_xcom_or_files(model_runs_airflow: ModelRunsAirflow) -> None:
    secrets = model_runs_airflow.secrets
    assert len(secrets) >= 6, "the scan needs the real issued tokens"
    dump = model_runs_airflow.metadata_dump()
    assert b"idbt_events" in dump and b"svc_transformer" in dump  # the events are there ...
    for secret in secrets:
        assert secret.encode() not in dump, "a secret reached the metadata database"  # ... their tokens are not
    assert scan_files_for_secrets(model_runs_airflow.home.parent, secrets) > 10


def _latest_run(model_runs_airflow: ModelRunsAirflow, dag_id: str) -> str:
    ((run_id,),) = model_runs_airflow.airflow.query(
        "select run_id from dag_run where dag_id = :d order by id desc limit 1", d=dag_id
    )
    return str(run_id)


def test_audit_after_an_in_process_dags_test_reads_the_xcom_and_says_why_there_is_no_log(
    model_runs_airflow: ModelRunsAirflow,
) -> None:
    """Tried as a new user would: `airflow dags test` (no --use-executor) runs tasks in-process, no log files."""
    airflow = model_runs_airflow.airflow
    tested = airflow.airflow("dags", "test", TEAM_B_DAG_ID, check=False, timeout=600)
    run_id = _latest_run(model_runs_airflow, TEAM_B_DAG_ID)
    assert run_id != model_runs_airflow.team_b_run_id, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert not list((airflow.home / "logs").glob(f"dag_id={TEAM_B_DAG_ID}/run_id={run_id}/**/*.log"))
    done = model_runs_airflow.idbt("audit", "--dag-id", TEAM_B_DAG_ID, "--run-id", run_id, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    ((model,),) = [report["models"]]
    (trail,) = model["tries"]
    assert model["complete"] and trail["events_from"] == "xcom" and trail["outcome"] == "success"
    assert trail["identity"]["subject"] == "svc_auditor"
    text = model_runs_airflow.idbt("audit", "--dag-id", TEAM_B_DAG_ID, "--run-id", run_id)
    assert "idbt_events XCom" in text.stdout and "no identity-tagged end event" not in text.stdout
    # A try with neither (a provider that did not push its events yet): the audit says why there is no log.
    airflow.query("select 1")  # the engine exists
    _delete_xcom(model_runs_airflow, TEAM_B_DAG_ID, run_id)
    bare = model_runs_airflow.idbt("audit", "--dag-id", TEAM_B_DAG_ID, "--run-id", run_id)
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert "left no task log: the run came from `airflow dags test`" in bare.stdout
    assert "no identity-tagged end event" not in bare.stdout


def _delete_xcom(model_runs_airflow: ModelRunsAirflow, dag_id: str, run_id: str) -> None:
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "root",
            "-d",
            model_runs_airflow.metadata_db,
            "-qc",
            f"delete from xcom where dag_id = '{dag_id}' and run_id = '{run_id}' and key = 'idbt_events'",
        ],
        check=True,
        capture_output=True,
    )
