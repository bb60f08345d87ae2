"""End to end: one DAG whose two model tasks run as two identities, an OIDC token exchange (oidc-provider) and an
AWS role (moto_server), through Airflow's executor path; each task logs its own identity. Once with a new dbt
process per task, once with both tasks forked back to back by one warm dbt worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.dbt.warm import stop_workers, worker_pids
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt
from tests.fixtures.oidc_provider import SECRET_CLIENT, WAREHOUSE, WORKLOAD, OidcProviderServer, write_token

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::210987654321:role/dbt-orders"


@dataclass
class TwoIdentitiesRun:
    home: Path
    outcome: DagRunOutcome
    secrets: list[str]
    mode: str


@pytest.fixture(scope="module", params=["subprocess", "warm"])
def two_identities(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    oidc_provider: OidcProviderServer,
    moto_sts: str,
) -> Iterator[TwoIdentitiesRun]:
    home = tmp_path_factory.mktemp(f"two-identities-{request.param}")
    dags = home / "dags"
    dags.mkdir()
    project = copy_project(EXAMPLE_PROJECT, dags / "example_project")
    (dags / "idbt_two_identities.py").write_text((REPO / "tests/e2e/dags/idbt_two_identities.py").read_text())
    # Two projected token files, as two workloads would have: one for the IdP, one for STS.
    oidc_subject = oidc_provider.subject_token()
    aws_subject = oidc_provider.subject_token(client_id="other-workload", audience="sts.amazonaws.com")
    oidc_file = write_token(home / "oidc-token", oidc_subject)
    aws_file = write_token(home / "aws-token", aws_subject)
    oidc_conn = {
        "conn_type": "idbt_oidc",
        "host": oidc_provider.issuer,
        "login": SECRET_CLIENT,
        "password": oidc_provider.client_secret,
        "extra": {
            "audience": WAREHOUSE,
            "audience_param": "resource",
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_file": str(oidc_file),
        },
    }
    aws_conn = {
        "conn_type": "idbt_aws",
        "extra": {
            "role_arn": ROLE,
            "region_name": "eu-west-1",
            "sts_endpoint_url": moto_sts,
            "groups": "orders-writers",
            "subject_issuer": oidc_provider.subject_issuer,
        },
    }
    env = {
        **project.env,
        "IDBT_EXAMPLE_PROJECT_DIR": str(project.project_dir),
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(aws_file),
        "AIRFLOW_CONN_IDBT_E2E_OIDC": json.dumps(oidc_conn),
        "AIRFLOW_CONN_IDBT_E2E_AWS": json.dumps(aws_conn),
        "AIRFLOW__IDBT__EXECUTION_MODE": request.param,
        "IDBT_WARM_DIR": str(home / "warm"),
    }
    run_dbt(project.project_dir, "parse", env=env)
    run_dbt(project.project_dir, "seed", env=env)
    with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
        airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
        outcome = airflow.run_dag("idbt_two_identities")
    try:
        yield TwoIdentitiesRun(home, outcome, [oidc_subject, aws_subject, oidc_provider.client_secret], request.param)
    finally:
        stop_workers(home / "warm")


def _events(run: TwoIdentitiesRun, kind: str, task_id: str) -> list[dict]:
    return [e for e in run.outcome.events() if e["kind"] == kind and e["task_id"] == task_id]


def test_both_tasks_succeeded(two_identities: TwoIdentitiesRun) -> None:
    assert two_identities.outcome.state == "success", two_identities.outcome.output[-3000:]


def test_each_task_logged_its_own_identity(two_identities: TwoIdentitiesRun) -> None:
    oidc = _events(two_identities, "token_issued", "customers_as_oidc")[0]["identity"]
    aws = _events(two_identities, "token_issued", "orders_as_aws")[0]["identity"]
    assert oidc["subject"] == WORKLOAD and oidc["principal"] == SECRET_CLIENT
    assert oidc["groups"] == ["analytics.engineer"] and oidc["audience"] == [WAREHOUSE]
    assert aws["subject"] == "arn:aws:sts::210987654321:assumed-role/dbt-orders/idbt-idbt_e2e_aws"
    assert aws["principal"] == ROLE and aws["groups"] == ["orders-writers"]
    assert oidc["fingerprint"] != aws["fingerprint"]
    for task_id, identity in (("customers_as_oidc", oidc), ("orders_as_aws", aws)):
        end = next(e for e in _events(two_identities, "model_run", task_id) if e["phase"] == "end")
        assert end["status"] == "success"
        assert end["identity"]["subject"] == identity["subject"]


def test_warm_mode_ran_both_identities_in_one_worker(two_identities: TwoIdentitiesRun) -> None:
    logs = "\n".join(path.read_text() for path in two_identities.outcome.task_logs().values())
    assert "dbt | " in logs  # dbt's own lines reached the task log in both modes
    if two_identities.mode == "subprocess":
        assert not (two_identities.home / "warm").exists()
        return
    assert "warm dbt worker cannot take this run" not in logs
    started = worker_pids(two_identities.home / "warm")
    assert len(started) == 1, started  # started by the first task, reused by the second


def test_no_subject_token_or_client_secret_anywhere(two_identities: TwoIdentitiesRun) -> None:
    needles = [secret.encode() for secret in two_identities.secrets]
    files = [*(two_identities.home / "airflow").rglob("*"), *(two_identities.home / "warm").rglob("*")]
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"a secret leaked into {path}"
    for secret in two_identities.secrets:
        assert secret not in two_identities.outcome.output
