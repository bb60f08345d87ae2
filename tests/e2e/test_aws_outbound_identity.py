"""End to end, the MWAA recipe: a model task whose worker holds only AWS credentials (an execution role's, as
AWS_* variables) gets its subject token from `sts:GetWebIdentityToken` (the STS stand-in, SigV4-checked) and
exchanges it through the Google stand-ins (STS verifying it against the AWS account's JWKS, then impersonation),
through Airflow's executor path; the task logs the identity, and no token or AWS secret lands in any file or output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from tests.fixtures.aws_outbound_sts import EXECUTION_ROLE, OutboundSetup, claims_of, outbound_setup
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt
from tests.fixtures.google_fixtures import POOL, PROJECT_NUMBER, RUNNER_SA, GoogleSetup
from tests.fixtures.google_servers import Provider
from tests.fixtures.leak_scan import scan_files_for_secrets

pytestmark = pytest.mark.e2e
__all__ = ["outbound_setup"]  # the fixture, imported for this module


@dataclass
class OutboundRun:
    home: Path
    outcome: DagRunOutcome
    secrets: list[str]
    setup: GoogleSetup
    outbound: OutboundSetup
    provider: Provider


@pytest.fixture(scope="module")
def outbound_run(
    tmp_path_factory: pytest.TempPathFactory, google_setup: GoogleSetup, outbound_setup: OutboundSetup
) -> Iterator[OutboundRun]:
    home = tmp_path_factory.mktemp("aws-outbound-identity")
    dags = home / "dags"
    dags.mkdir()
    project = copy_project(EXAMPLE_PROJECT, dags / "example_project")
    name = "idbt_aws_outbound_identity.py"
    (dags / name).write_text((REPO / "tests/e2e/dags" / name).read_text())
    provider = google_setup.cloud.add_provider(PROJECT_NUMBER, POOL, "aws-outbound", outbound_setup.sts.issuer)
    extra = google_setup.extra(audience=provider.resource, groups="analytics", project_id="analytics-prod")
    extra |= outbound_setup.extra(aws_request_tags="job=dbt")
    env = {
        **project.env,
        **outbound_setup.env(),  # the worker's AWS credentials, read by botocore's default chain
        "IDBT_EXAMPLE_PROJECT_DIR": str(project.project_dir),
        "AIRFLOW_CONN_IDBT_E2E_AWS_OUTBOUND": json.dumps({"conn_type": "idbt_google", "extra": extra}),
    }
    run_dbt(project.project_dir, "parse", env=env)
    run_dbt(project.project_dir, "seed", env=env)
    google_setup.cloud.reset()
    outbound_setup.sts.reset()
    with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
        airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
        outcome = airflow.run_dag("idbt_aws_outbound_identity")
    issued = [token for token in google_setup.cloud.tokens]  # federated and service-account access tokens
    worker = outbound_setup.worker
    secrets = [*outbound_setup.sts.issued, *issued, worker.secret_access_key, str(worker.session_token)]
    yield OutboundRun(home, outcome, secrets, google_setup, outbound_setup, provider)


def test_the_task_ran_as_the_aws_role_federated_into_google(outbound_run: OutboundRun) -> None:
    assert outbound_run.outcome.state == "success", outbound_run.outcome.output[-3000:]
    events = list(outbound_run.outcome.events())
    issued = next(e for e in events if e["kind"] == "token_issued")["identity"]
    assert issued["subject"] == RUNNER_SA
    assert issued["principal"] == f"principal:{outbound_run.provider.pool}/subject/{EXECUTION_ROLE}"
    assert issued["groups"] == ["analytics"] and issued["audience"] == [outbound_run.provider.resource]
    end = next(e for e in events if e["kind"] == "model_run" and e["phase"] == "end")
    assert end["status"] == "success" and end["identity"]["fingerprint"] == issued["fingerprint"]
    # One GetWebIdentityToken, for the provider's default audience, with the request tag as a claim; Google's
    # STS read the account issuer's discovery document and JWKS to verify it.
    sts = outbound_run.outbound.sts
    assert sts.requests == {"sts": 1, "issuer": 2} and len(sts.issued) == 1
    assert sts.calls[0]["audiences"] == ["https:" + outbound_run.provider.resource]
    assert claims_of(sts.issued[0])["https://sts.amazonaws.com/"]["request_tags"] == {"job": "dbt"}
    assert outbound_run.setup.cloud.requests.get("sts") == 1 and outbound_run.setup.cloud.requests.get("iam") == 1


def test_no_token_or_aws_secret_anywhere(outbound_run: OutboundRun) -> None:
    assert len(outbound_run.secrets) >= 4  # the outbound JWT, two Google tokens, the worker's AWS secrets
    assert scan_files_for_secrets(outbound_run.home / "airflow", outbound_run.secrets) > 0
    for secret in outbound_run.secrets:
        assert secret not in outbound_run.outcome.output
