"""End to end: a model task running as an Entra ID application (a Kubernetes-style token file as the federated
credential, msal against the Entra-shaped server over HTTPS), through Airflow's executor path; the task logs the
identity, and no subject token or access token lands in any file or output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt
from tests.fixtures.entra_server import APP_ROLES, FEDERATED_APP, RUNNER, SQL, TENANT, AzureTestbed, azure_testbed
from tests.fixtures.oidc_provider import write_token

pytestmark = pytest.mark.e2e
__all__ = ["azure_testbed"]  # the fixture, imported for this module


@dataclass
class AzureRun:
    home: Path
    outcome: DagRunOutcome
    secrets: list[str]
    object_id: str


@pytest.fixture(scope="module")
def azure_run(tmp_path_factory: pytest.TempPathFactory, azure_testbed: AzureTestbed) -> Iterator[AzureRun]:
    home = tmp_path_factory.mktemp("azure-identity")
    dags = home / "dags"
    dags.mkdir()
    project = copy_project(EXAMPLE_PROJECT, dags / "example_project")
    (dags / "idbt_azure_identity.py").write_text((REPO / "tests/e2e/dags/idbt_azure_identity.py").read_text())
    subject = azure_testbed.issuer.token(RUNNER)
    token_file = write_token(home / "azure-identity-token", subject)
    conn = {
        "conn_type": "idbt_azure",
        "login": FEDERATED_APP,
        "extra": {
            "tenantId": TENANT,
            "authority_host": azure_testbed.entra.base,
            "warehouse": "azure_sql",
            "subject_token_file": str(token_file),
        },
    }
    env = {
        **project.env,
        "IDBT_EXAMPLE_PROJECT_DIR": str(project.project_dir),
        "AIRFLOW_CONN_IDBT_E2E_AZURE": json.dumps(conn),
    }
    run_dbt(project.project_dir, "parse", env=env)
    run_dbt(project.project_dir, "seed", env=env)
    already = len(azure_testbed.entra.issued)
    with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
        airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
        outcome = airflow.run_dag("idbt_azure_identity")
    issued = azure_testbed.entra.issued[already:]
    object_id = azure_testbed.app(FEDERATED_APP).object_id
    yield AzureRun(home, outcome, [subject, *issued], object_id)


def test_the_task_logged_its_entra_identity(azure_run: AzureRun) -> None:
    assert azure_run.outcome.state == "success", azure_run.outcome.output[-3000:]
    events = list(azure_run.outcome.events())
    identity = next(e for e in events if e["kind"] == "token_issued")["identity"]
    assert identity["subject"] == azure_run.object_id and identity["principal"] == FEDERATED_APP
    assert identity["issuer"] == f"https://sts.windows.net/{TENANT}/"
    assert identity["groups"] == list(APP_ROLES) and identity["audience"] == [f"{SQL}/"]
    end = next(e for e in events if e["kind"] == "model_run" and e["phase"] == "end")
    assert end["status"] == "success" and end["identity"]["subject"] == azure_run.object_id


def test_no_subject_token_or_access_token_anywhere(azure_run: AzureRun) -> None:
    assert len(azure_run.secrets) >= 2  # the subject token and at least one Entra token
    needles = [secret.encode() for secret in azure_run.secrets]
    for path in (azure_run.home / "airflow").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"a secret leaked into {path}"
    for secret in azure_run.secrets:
        assert secret not in azure_run.outcome.output
