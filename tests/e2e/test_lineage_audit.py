"""End to end: the identity trail of real supervised runs: event schema, OpenLineage file transport, `idbt audit`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow, free_port
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt
from tests.fixtures.leak_scan import scan_files_for_secrets

pytestmark = pytest.mark.e2e

AUDIENCE = "idbt-e2e-audit"
SUBJECT = "svc-audit-runner"
HERE = Path(__file__).parent
DAG_ID = "idbt_lineage_audit"
CLI = "airflow_provider_idbt.commands.cli"
MODEL_TASKS = {"paid_orders", "payroll_report", "salaries_export", "flaky_total", "listener_fault"}


@dataclass
class AuditRun:
    home: Path
    project: Path
    warehouse: Path
    main: DagRunOutcome
    incomplete: DagRunOutcome
    lineage_file: Path
    audits: dict[str, subprocess.CompletedProcess[str]]
    secrets: list[str]


def _audit(airflow: LocalAirflow, outcome: DagRunOutcome, *flags: str) -> subprocess.CompletedProcess[str]:
    command = ["-m", CLI, "audit", "--dag-id", outcome.dag_id, "--run-id", outcome.run_id]
    return subprocess.run(
        [sys.executable, *command, *flags],
        env=airflow.env(),
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditRun]:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    home = tmp_path_factory.mktemp("e2e_audit")
    dags = home / "dags"
    dags.mkdir()
    copied = copy_project(EXAMPLE_PROJECT, dags / "audit_project")
    shutil.copytree(HERE / "audit_models", copied.project_dir / "models" / "audit")
    shutil.copy(HERE / "dags" / "idbt_lineage_audit.py", dags)
    lineage_file = home / "openlineage.jsonl"
    secret = os.urandom(16).hex()
    client = DevClient(
        client_id="audit-runner", client_secret=secret, subject=SUBJECT, groups=("analytics",), audiences=(AUDIENCE,)
    )
    with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:

        def conn(host: str) -> str:
            extra = {"audience": AUDIENCE}
            return json.dumps(
                {"conn_type": "idbt_oidc", "host": host, "login": client.client_id, "password": secret, "extra": extra}
            )

        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_DUCKDB_PATH": str(copied.duckdb_path),
            "IDBT_AUDIT_PROJECT_DIR": str(copied.project_dir),
            "AIRFLOW_CONN_IDBT_DEV": conn(idp.issuer),
            "AIRFLOW_CONN_IDBT_UNREACHABLE": conn(f"http://127.0.0.1:{free_port()}"),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "idbt-e2e",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(lineage_file), "append": True}
            ),
        }
        run_dbt(copied.project_dir, "parse", env=env)
        run_dbt(copied.project_dir, "seed", env=env)
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            main = airflow.run_dag(DAG_ID)
            incomplete = airflow.run_dag("idbt_audit_incomplete")
        audits = {
            "text": _audit(airflow, main),
            "json": _audit(airflow, main, "--json"),
            "incomplete": _audit(airflow, incomplete, "--json"),
            "unknown": subprocess.run(
                [sys.executable, "-m", CLI, "audit", "--dag-id", DAG_ID, "--run-id", "nope"],
                env=airflow.env(),
                capture_output=True,
                text=True,
                timeout=120,
            ),
        }
        issued = list(idp.issued_tokens)
    yield AuditRun(
        home=home,
        project=copied.project_dir,
        warehouse=copied.duckdb_path,
        main=main,
        incomplete=incomplete,
        lineage_file=lineage_file,
        audits=audits,
        secrets=[*issued, secret],
    )


def _relation(node: dict[str, Any]) -> str:
    table = node.get("alias") or node.get("identifier")
    return ".".join(p for p in (node.get("database"), node.get("schema"), table) if p)


def _manifest(run: AuditRun) -> dict[str, Any]:
    return json.loads((run.project / "target" / "manifest.json").read_text())


def _expected_lineage(run: AuditRun, name: str) -> tuple[list[str], list[str]]:
    """The model's parents' relations and its own relation, read straight from dbt's manifest."""
    manifest = _manifest(run)
    nodes = {**manifest["nodes"], **manifest["sources"]}
    node = next(n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == name)
    return sorted(_relation(nodes[p]) for p in node["depends_on"]["nodes"]), [_relation(node)]


def _events(outcome: DagRunOutcome, task_id: str | None = None) -> list[dict[str, Any]]:
    return [e for e in outcome.events() if task_id is None or e["task_id"] == task_id]


def test_every_event_line_matches_the_published_schema(audit_run: AuditRun) -> None:
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    seen = _events(audit_run.main) + _events(audit_run.incomplete)
    for event in seen:
        validator.validate(event)
    kinds = {e["kind"] for e in seen}
    assert kinds == {"model_run", "token_issued", "permission_mismatch", "auth_failure", "task_lifecycle"}


def test_model_events_carry_run_keys_and_openlineage_datasets(audit_run: AuditRun) -> None:
    inputs, outputs = _expected_lineage(audit_run, "paid_orders")
    assert inputs == ["idbt_example.main.orders", "idbt_example.main.payments"]
    mine = [e for e in _events(audit_run.main, "paid_orders") if e.get("source") != "listener"]
    assert {e["kind"] for e in mine} == {"token_issued", "model_run"}
    for event in _events(audit_run.main, "paid_orders"):
        assert (event["dag_id"], event["run_id"], event["try_number"], event["map_index"]) == (
            DAG_ID,
            audit_run.main.run_id,
            1,
            -1,
        )
        assert event["model"]["namespace"] == f"duckdb://{audit_run.warehouse}"
        assert sorted(event["model"]["inputs"]) == inputs and event["model"]["outputs"] == outputs
    end = next(e for e in mine if e.get("phase") == "end")
    assert end["status"] == "success" and end["identity"]["subject"] == SUBJECT


def _mismatch(run: AuditRun, task_id: str) -> dict[str, Any]:
    tries = sorted({t for (task, t) in run.main.task_logs() if task == task_id})
    assert tries == [1], "a permission mismatch is not retried"
    (mismatch,) = [e for e in _events(run.main, task_id) if e["kind"] == "permission_mismatch"]
    assert mismatch["identity"]["subject"] == SUBJECT
    assert mismatch["model"]["outputs"] == _expected_lineage(run, task_id)[1]
    return mismatch


def test_preflight_mismatch_names_required_and_held_groups(audit_run: AuditRun) -> None:
    mismatch = _mismatch(audit_run, "payroll_report")
    assert mismatch["stage"] == "preflight" and "group:payroll" in " ".join(mismatch["required"])
    assert not [e for e in _events(audit_run.main, "payroll_report") if e.get("phase") == "start"], "dbt never ran"


def test_warehouse_mismatch_carries_the_warehouse_message(audit_run: AuditRun) -> None:
    mismatch = _mismatch(audit_run, "salaries_export")
    assert mismatch["stage"] == "warehouse" and "Permission Error" in mismatch["warehouse_message"]


def test_retried_failure_has_an_identity_tagged_end_per_try(audit_run: AuditRun) -> None:
    ends = [e for e in _events(audit_run.main, "flaky_total") if e["kind"] == "model_run" and e["phase"] == "end"]
    assert sorted(e["try_number"] for e in ends) == [1, 2]
    assert all(e["status"] == "error" and e["identity"]["subject"] == SUBJECT for e in ends)
    assert len({e["identity"]["fingerprint"] for e in ends}) == 2, "each try mints its own token"


def test_a_listener_fault_never_fails_the_task(audit_run: AuditRun) -> None:
    events = _events(audit_run.main, "listener_fault")
    assert not [e for e in events if e["kind"] == "task_lifecycle"], "the fault must have stopped the listener"
    end = next(e for e in events if e["kind"] == "model_run" and e["phase"] == "end")
    assert end["status"] == "success"
    (log,) = [p for (task, _), p in audit_run.main.task_logs().items() if task == "listener_fault"]
    text = log.read_text()
    assert "idbt listener could not emit" in text and "injected listener fault" in text
    assert _ti_states(audit_run)["listener_fault"] == "success"


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The audit's JSON document (Airflow may log a line to stdout before it)."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


def _ti_states(run: AuditRun) -> dict[str, str]:
    report = _report(run.audits["json"])
    return {m["task_id"]: m["tries"][-1]["state"] for m in report["models"]}


def test_the_listener_is_silent_for_other_tasks(audit_run: AuditRun) -> None:
    (log,) = [p for (task, _), p in audit_run.main.task_logs().items() if task == "not_a_model"]
    assert "a plain Python task" in log.read_text()
    assert _events(audit_run.main, "not_a_model") == []


def _lineage_events(run: AuditRun) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.lineage_file.read_text().splitlines() if line.strip()]


def test_openlineage_events_carry_the_manifest_datasets_and_the_identity_facet(audit_run: AuditRun) -> None:
    facet_schema = json.loads((REPO / "docs" / "idbt_identity_facet.schema.json").read_text())
    facet_validator = jsonschema.Draft202012Validator(facet_schema)
    namespace = f"duckdb://{audit_run.warehouse}"
    events = _lineage_events(audit_run)
    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.paid_orders"]
    assert len(complete) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    (event,) = complete
    inputs, outputs = _expected_lineage(audit_run, "paid_orders")
    assert sorted((d["namespace"], d["name"]) for d in event["inputs"]) == [(namespace, n) for n in inputs]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [(namespace, n) for n in outputs]
    facet = event["run"]["facets"]["idbt_identity"]
    facet_validator.validate({"idbt_identity": facet})
    assert facet["subject"] == SUBJECT and facet["groups"] == ["analytics"]
    logged = next(e for e in _events(audit_run.main, "paid_orders") if e["kind"] == "model_run")
    assert facet["fingerprint"] == logged["identity"]["fingerprint"], "lineage and task log name the same token"
    for task_id in ("payroll_report", "salaries_export"):
        fail = next(e for e in events if e["eventType"] == "FAIL" and e["job"]["name"] == f"{DAG_ID}.{task_id}")
        assert fail["run"]["facets"]["idbt_identity"]["subject"] == SUBJECT
        assert [d["name"] for d in fail["outputs"]] == _expected_lineage(audit_run, task_id)[1]


def test_audit_prints_each_models_trail_and_exits_zero_when_complete(audit_run: AuditRun) -> None:
    text, as_json = audit_run.audits["text"], audit_run.audits["json"]
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    assert text.returncode == 0, text.stdout + text.stderr
    assert "log reader failed" not in as_json.stderr + text.stderr, "read through Airflow's log reader"
    report = _report(as_json)
    models = {m["task_id"]: m for m in report["models"]}
    assert set(models) == MODEL_TASKS and report["complete"] is True
    assert models["paid_orders"]["unique_id"] == "model.idbt_example.paid_orders"
    assert [t["outcome"] for t in models["paid_orders"]["tries"]] == ["success"]
    assert [t["outcome"] for t in models["flaky_total"]["tries"]] == ["error", "error"]
    (denied,) = models["salaries_export"]["tries"]
    assert denied["identity"]["subject"] == SUBJECT and "Permission Error" in denied["warehouse_message"]
    (refused,) = models["payroll_report"]["tries"]
    assert refused["outcome"] == "permission_mismatch" and "group:payroll" in " ".join(refused["required"])
    lines = text.stdout.splitlines()
    start = lines.index("model.idbt_example.paid_orders  (complete)")
    assert lines[start + 1].startswith(f"  {SUBJECT} (issuer http://127.0.0.1:")
    assert "→ paid_orders try 1 → model.idbt_example.paid_orders" in lines[start + 1]
    assert "idbt_example.main.orders" in lines[start + 2] and "idbt_example.main.paid_orders" in lines[start + 3]
    assert "warehouse said: " in text.stdout and "Permission Error" in text.stdout


def test_audit_exits_non_zero_when_a_model_has_no_identity_tagged_end(audit_run: AuditRun) -> None:
    result = audit_run.audits["incomplete"]
    assert result.returncode == 1, result.stdout + result.stderr
    (model,) = _report(result)["models"]
    assert model["unique_id"] == "model.idbt_example.stg_orders" and model["complete"] is False
    assert model["tries"][0]["outcome"] == "auth_failure" and model["tries"][0]["identity"] is None
    unknown = audit_run.audits["unknown"]
    assert unknown.returncode == 2 and "no task instances" in unknown.stderr


def test_no_token_or_secret_in_logs_lineage_or_audit(audit_run: AuditRun) -> None:
    assert len(audit_run.secrets) >= 5, "the scan needs the real issued tokens"
    scanned = scan_files_for_secrets(audit_run.home, audit_run.secrets)
    outputs = [audit_run.main.output, audit_run.incomplete.output]
    outputs += [p.stdout + p.stderr for p in audit_run.audits.values()]
    for text in outputs:
        assert not any(secret in text for secret in audit_run.secrets)
    assert audit_run.lineage_file.stat().st_size > 0 and scanned > 20
