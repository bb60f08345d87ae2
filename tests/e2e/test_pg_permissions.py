"""End to end on PostgreSQL: who may touch what, enforced by the pre-flight and by the warehouse, through Airflow."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from tests.fixtures.dbt_projects import REPO
from tests.fixtures.leak_scan import leaked_forms, scan_files_for_secrets
from tests.fixtures.pg_warehouse import (
    ROLE_MAPPING,
    Identities,
    copy_pg_project,
    create_warehouse,
    drop_warehouse,
)
from tests.fixtures.postgres import PrivateCluster

pytestmark = pytest.mark.e2e

DB = "idbt_e2e"
DAG_ID = "idbt_pg_permissions"


@dataclass
class PgRun:
    outcome: DagRunOutcome
    server_log: str
    home: Path
    secrets: list[str]
    tokens_by_subject: dict[str, int]


@pytest.fixture(scope="module")
def pg_run(
    pg_cluster: PrivateCluster, pg_identities: Identities, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgRun]:
    home = tmp_path_factory.mktemp("pg_e2e")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_pg_permissions.py", dags)
    create_warehouse(pg_cluster, DB)
    try:
        project = copy_pg_project(home / "idbt_pg")
        pg_identities.idp.reject_first.add("svc_rotated")
        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_PG_PROJECT_DIR": str(project),
            "IDBT_PG_PORT": str(pg_cluster.port),
            "IDBT_PG_DB": DB,
            "AIRFLOW__IDBT__ROLE_MAPPING": json.dumps(ROLE_MAPPING),
        }
        for subject, conn_id in [
            ("svc_transformer", "IDBT_PG_TRANSFORMER"),
            ("svc_intern", "IDBT_PG_INTERN"),
            ("svc_rotated", "IDBT_PG_ROTATED"),
        ]:
            env[f"AIRFLOW_CONN_{conn_id}"] = json.dumps(pg_identities.connection(subject))
        env["AIRFLOW_CONN_IDBT_PG_AUDITOR"] = json.dumps(pg_identities.connection("svc_auditor", with_mapping=False))
        offset = pg_cluster.log_size()
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            outcome = airflow.run_dag(DAG_ID)
        yield PgRun(
            outcome=outcome,
            server_log=pg_cluster.log_since(offset),
            home=home,
            secrets=[*pg_identities.all_secrets(), pg_cluster.admin_password],
            tokens_by_subject=dict(pg_identities.idp.issued_by_subject),
        )
    finally:
        drop_warehouse(pg_cluster, DB)


def _events(run: PgRun, kind: str, task_id: str | None = None) -> list[dict]:
    return [e for e in run.outcome.events() if e["kind"] == kind and (task_id is None or e["task_id"] == task_id)]


def _tries(run: PgRun, task_id: str) -> list[int]:
    return sorted(t for (tid, t) in run.outcome.task_logs() if tid == task_id)


def _statements(log: str, user: str) -> list[str]:
    # One log record per timestamped line; continuation lines (multi-line SQL) belong to the record above.
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
    return [r for r in records if f"user={user}," in r and "statement: " in r]


def test_the_allowed_identity_builds_every_model_as_its_mapped_role(pg_run: PgRun) -> None:
    logs = pg_run.outcome.task_logs()
    group = sorted(tid for tid, _ in logs if tid.startswith("transformer."))
    assert group == [
        "transformer.customer_orders",
        "transformer.finance_summary",
        "transformer.stg_customers",
        "transformer.stg_orders",
        "transformer.stg_payments",
    ], pg_run.outcome.output[-3000:]
    for task_id in group:
        end = [e for e in _events(pg_run, "model_run", task_id) if e["phase"] == "end"]
        assert end and end[-1]["status"] == "success", (task_id, end)
    statements = _statements(pg_run.server_log, "svc_transformer")
    assert any("set role finance_admin" in s for s in statements)  # the model's required role
    assert any("set role transformer" in s for s in statements)  # the identity's first mapped role


def test_statement_log_names_the_identity_and_the_task(pg_run: PgRun) -> None:
    comments = []
    for record in _statements(pg_run.server_log, "svc_transformer"):
        found = re.search(r"/\* (\{\"app\":\"idbt\".*?\}) \*/", record)
        if found:
            comments.append(json.loads(found.group(1)))
    assert comments, pg_run.server_log[-3000:]
    tasks = {c["task_id"] for c in comments}
    assert "transformer.customer_orders" in tasks and len(tasks) == 5
    for comment in comments:
        assert comment["sub"] == "svc_transformer"
        assert comment["dag_id"] == DAG_ID and comment["run_id"] == pg_run.outcome.run_id
        assert comment["try_number"] == 1 and comment["model"].startswith("model.idbt_pg.")
        assert set(comment) == {"app", "dag_id", "run_id", "task_id", "try_number", "map_index", "model", "sub"}


def test_missing_grant_fails_on_the_first_try_despite_retries(pg_run: PgRun) -> None:
    assert pg_run.outcome.state == "failed"
    assert _tries(pg_run, "intern_payments") == [1]
    text = pg_run.outcome.task_logs()[("intern_payments", 1)].read_text()
    assert "permission denied for table payments" in text
    assert "AirflowFailException" in text or "PermissionMismatch" in text
    [event] = _events(pg_run, "permission_mismatch", "intern_payments")
    assert event["stage"] == "warehouse" and event["required"] == ["table payments"]
    assert event["identity"]["subject"] == "svc_intern"
    assert "permission denied for table payments" in event["warehouse_message"]
    # The warehouse said no to the role the identity maps to, after SET ROLE.
    assert any("set role intern_role" in s for s in _statements(pg_run.server_log, "svc_intern"))


def test_meta_requirement_fails_before_any_connection(pg_run: PgRun) -> None:
    assert _tries(pg_run, "auditor_finance") == [1]
    [event] = _events(pg_run, "permission_mismatch", "auditor_finance")
    assert event["stage"] == "preflight"
    assert event["required"] == ["role:finance_admin"]
    assert event["held"] == ["group:auditors", "role:transformer"]
    assert "[idbt] role_mapping" in event["error_message"]
    # The server logs every connection attempt; the auditor's login role never tried one.
    assert "svc_auditor" in pg_run.server_log  # its password was set when its token was issued ...
    assert "user=svc_auditor" not in pg_run.server_log  # ... but it never connected
    assert not _events(pg_run, "model_run", "auditor_finance")


def test_a_token_the_warehouse_rejects_is_refreshed_exactly_once(pg_run: PgRun) -> None:
    assert _tries(pg_run, "rotated_token") == [1]
    assert pg_run.tokens_by_subject["svc_rotated"] == 2
    issued = _events(pg_run, "token_issued", "rotated_token")
    assert [e.get("reason") for e in issued] == [None, "refresh"]
    assert issued[0]["identity"]["fingerprint"] != issued[1]["identity"]["fingerprint"]
    [failure] = _events(pg_run, "auth_failure", "rotated_token")
    assert failure["action"] == "refresh_token" and failure["model_statements"] == 0
    assert "password authentication failed" in failure["error_message"]
    end = [e for e in _events(pg_run, "model_run", "rotated_token") if e["phase"] == "end"]
    assert end[-1]["status"] == "success"
    assert "expired password" in pg_run.server_log


def test_no_token_or_secret_anywhere(pg_run: PgRun) -> None:
    assert len(pg_run.secrets) >= 10
    scanned = scan_files_for_secrets(pg_run.home, pg_run.secrets)
    assert leaked_forms(pg_run.server_log.encode(), pg_run.secrets) == [], "a secret reached the PostgreSQL log"
    assert leaked_forms(pg_run.outcome.output.encode(), pg_run.secrets) == []
    assert scanned > 20


def test_every_event_matches_the_published_schema(pg_run: PgRun) -> None:
    import jsonschema

    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    events = list(pg_run.outcome.events())
    assert {"permission_mismatch", "auth_failure", "token_issued", "model_run"} <= {e["kind"] for e in events}
    for event in events:
        errors = [error.message for error in validator.iter_errors(event)]
        assert not errors, (event["kind"], event["task_id"], errors)
