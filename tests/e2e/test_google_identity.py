"""End to end: a model task running as a Google identity (the worker's token file through the STS stand-in, then
impersonation through the IAM Credentials stand-in), through Airflow's executor path; the task logs the identity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt
from tests.fixtures.google_fixtures import RUNNER_SA, WORKLOAD, GoogleSetup
from tests.fixtures.oidc_provider import write_token

pytestmark = pytest.mark.e2e


@dataclass
class GoogleRun:
    home: Path
    outcome: DagRunOutcome
    secrets: list[str]
    setup: GoogleSetup


@pytest.fixture(scope="module")
def google_run(tmp_path_factory: pytest.TempPathFactory, google_setup: GoogleSetup) -> Iterator[GoogleRun]:
    home = tmp_path_factory.mktemp("google-identity")
    dags = home / "dags"
    dags.mkdir()
    project = copy_project(EXAMPLE_PROJECT, dags / "example_project")
    (dags / "idbt_google_identity.py").write_text((REPO / "tests/e2e/dags/idbt_google_identity.py").read_text())
    subject = google_setup.subject_token()
    token_file = write_token(home / "gke-token", subject)
    extra = google_setup.extra(
        subject_token_source="file", subject_token_file=str(token_file), groups="analytics", project_id="analytics-prod"
    )
    env = {
        **project.env,
        "IDBT_EXAMPLE_PROJECT_DIR": str(project.project_dir),
        "AIRFLOW_CONN_IDBT_E2E_GOOGLE": json.dumps({"conn_type": "idbt_google", "extra": extra}),
    }
    run_dbt(project.project_dir, "parse", env=env)
    run_dbt(project.project_dir, "seed", env=env)
    google_setup.cloud.reset()
    with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
        airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
        outcome = airflow.run_dag("idbt_google_identity")
    issued = [token for token, info in google_setup.cloud.tokens.items() if info.principal.startswith("service")]
    yield GoogleRun(home, outcome, [subject, *issued], google_setup)


def test_the_task_succeeded_and_logged_its_google_identity(google_run: GoogleRun) -> None:
    assert google_run.outcome.state == "success", google_run.outcome.output[-3000:]
    events = list(google_run.outcome.events())
    issued = next(e for e in events if e["kind"] == "token_issued")["identity"]
    assert issued["subject"] == RUNNER_SA
    assert issued["principal"] == f"principal:{google_run.setup.workload.pool}/subject/{WORKLOAD}"
    assert issued["groups"] == ["analytics"] and issued["audience"] == [google_run.setup.workload.resource]
    end = next(e for e in events if e["kind"] == "model_run" and e["phase"] == "end")
    assert end["status"] == "success" and end["identity"]["fingerprint"] == issued["fingerprint"]
    assert google_run.setup.cloud.requests.get("sts") == 1 and google_run.setup.cloud.requests.get("iam") == 1


def test_no_subject_or_access_token_anywhere(google_run: GoogleRun) -> None:
    assert len(google_run.secrets) >= 2  # the subject token and the service account's access token
    needles = [secret.encode() for secret in google_run.secrets]
    for path in (google_run.home / "airflow").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"a secret leaked into {path}"
    for secret in google_run.secrets:
        assert secret not in google_run.outcome.output
