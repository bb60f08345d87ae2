"""dbt-bigquery's own client against a loopback endpoint: the token on the wire, nothing ambient, classified refusals.

No local stand-in serves BigQuery's API, so the profile's `api_endpoint` sends google-cloud-bigquery's real
requests to a recording HTTPS server (a certificate from the test CA) that answers with Google's documented
errors. The GCE metadata server is pointed at a recording port too, to prove nothing asked it for credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.failures import failure_for, may_refresh_and_rerun
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.query_comment import QueryCommentOptions, query_comment_fields, render_query_comment
from airflow_provider_idbt.errors import PermissionMismatch, WarehouseAuthFailed
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses.bigquery import PROFILE_SNIPPET, job_labels
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV, TOKEN_ENV_VAR
from tests.fixtures.dbt_venv import load_profile
from tests.fixtures.recording_https import (
    OneModelProject,
    Recorded,
    RecordingServer,
    Reply,
    google_access_denied,
    google_unauthenticated,
    refuse_all,
)
from tests.fixtures.test_ca import ThrowawayCA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PROJECT, DATASET = "acme-analytics", "analytics"
DENIED = f"Access Denied: Project {PROJECT}: User does not have bigquery.jobs.create permission in project {PROJECT}."


@pytest.fixture(scope="module")
def bigquery_api(test_ca: ThrowawayCA) -> Iterator[RecordingServer]:
    server = RecordingServer(google_unauthenticated, test_ca, "bigquery").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def metadata_server() -> Iterator[RecordingServer]:
    """Where google-auth would look for GCE credentials: every request here is a failure of the test."""
    server = RecordingServer(refuse_all(404), name="gce-metadata").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(bigquery_api: RecordingServer, tmp_path_factory: pytest.TempPathFactory) -> OneModelProject:
    args = {
        "project": PROJECT,
        "dataset": DATASET,
        "location": "EU",
        "api_endpoint": bigquery_api.url,
        # A refusal is final: no retries, and short timeouts, so a mistake fails the test instead of hanging it.
        "job_retries": 0,
        "job_creation_timeout_seconds": 15,
        "job_execution_timeout_seconds": 30,
        "job_retry_deadline_seconds": 20,
    }
    return OneModelProject(tmp_path_factory.mktemp("bq"), "bigquery", args)


@pytest.fixture
def bigquery(bigquery_api: RecordingServer, metadata_server: RecordingServer) -> Iterator[RecordingServer]:
    bigquery_api.clear()
    metadata_server.clear()
    yield bigquery_api
    assert metadata_server.requests == [], "something asked the GCE metadata server for credentials"


def _identity() -> IdentityContext:
    return IdentityContext("https://idp.test", "svc-dbt@Example", datetime(2030, 1, 1, tzinfo=UTC), "sha256:t")


def _comment() -> dict[str, object]:
    keys = {"dag_id": "Sales.Daily", "run_id": "manual__2026-01-01T00:00:00+00:00", "task_id": "orders"}
    return query_comment_fields(
        {**keys, "try_number": 1, "map_index": -1}, OneModelProject.MODEL, _identity(), QueryCommentOptions()
    )


def _child_env(ca: ThrowawayCA, metadata: RecordingServer, home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {
        QUERY_COMMENT_ENV: render_query_comment(_comment()),
        "REQUESTS_CA_BUNDLE": str(ca.bundle),
        "SSL_CERT_FILE": str(ca.bundle),
        # google-auth's metadata server addresses (its compute-engine detection reads both).
        "GCE_METADATA_HOST": f"127.0.0.1:{metadata.port}",
        "GCE_METADATA_IP": f"127.0.0.1:{metadata.port}",
        "HOME": str(home),  # no gcloud configuration or application-default credentials
    }


@pytest.fixture
def ambient_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An application-default credential in the Airflow worker's environment, which the task must never use."""
    bait = tmp_path / "adc.json"
    refresh = "bait-refresh-token-that-must-not-travel"
    bait.write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": refresh})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(bait))
    return refresh


def test_generated_profile_and_snippet_load_as_dbt_bigquery_credentials(tmp_path: Path) -> None:
    token = "ya29.profile-check"
    generated = write_profiles_dir(
        render_profile("bigquery", {"project": PROJECT, "dataset": DATASET, "retries": 2}, "p"), tmp_path / "gen"
    )
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "profiles.yml").write_text(PROFILE_SNIPPET)
    for directory, profile in ((generated, "p"), (tmp_path / "own", "analytics")):
        loaded = load_profile(directory, profile, {TOKEN_ENV_VAR: token})
        fields = loaded["fields"]
        assert loaded["credentials_class"] == "dbt.adapters.bigquery.credentials.BigQueryCredentials"
        assert fields["method"] == "oauth-secrets" and fields["token"] == token
        assert fields["database"] == PROJECT and fields["schema"] == DATASET
        assert fields["execution_project"] == PROJECT  # from the project, not from the environment
        assert not {"refresh_token", "keyfile", "keyfile_json", "client_secret"} & set(fields)
        assert fields["job_retries"] == (2 if profile == "p" else 1)


def _bearers(requests: list[Recorded]) -> set[str | None]:
    return {request.authorization for request in requests}


def test_a_refused_token_is_an_auth_failure_and_only_the_tasks_token_travels(
    bigquery: RecordingServer,
    project: OneModelProject,
    metadata_server: RecordingServer,
    test_ca: ThrowawayCA,
    ambient_key: str,
    tmp_path: Path,
) -> None:
    bigquery.responder = google_unauthenticated
    token = "ya29.task-token-401-" + tmp_path.name
    run = project.run(token, _child_env(test_ca, metadata_server, tmp_path / "home"))

    assert bigquery.requests, run.lines[-20:]
    assert _bearers(bigquery.requests) == {f"Bearer {token}"}
    first = bigquery.requests[0]
    assert first.path.startswith(f"/bigquery/v2/projects/{PROJECT}/datasets")
    assert all(ambient_key.encode() not in r.body for r in bigquery.requests)
    assert run.result.status != "success"

    error = failure_for(OneModelProject.MODEL, _identity(), run.result, run.log, "bigquery")
    assert isinstance(error, WarehouseAuthFailed), error
    assert "rejected the token of identity `svc-dbt@Example` for model `model.idbt_wh.orders`" in str(error)
    assert "refresh the access token" in str(error)
    # Nothing of the model ran, so the operator may refresh the token and run once more.
    assert may_refresh_and_rerun(run.result, run.log, "bigquery")
    assert run.leaks(token) == [] and token not in str(error)


def _jobs_refused(request: Recorded) -> Reply:
    """The identity may read the dataset (dataViewer) but not run jobs (no jobUser): the job insert is refused."""
    if request.method == "GET" and request.path.startswith(f"/bigquery/v2/projects/{PROJECT}/datasets?"):
        return Reply.json(
            200,
            {
                "kind": "bigquery#datasetList",
                "datasets": [
                    {"id": f"{PROJECT}:{DATASET}", "datasetReference": {"projectId": PROJECT, "datasetId": DATASET}}
                ],
            },
        )
    if request.method == "GET" and request.path.startswith(
        f"/bigquery/v2/projects/{PROJECT}/datasets/{DATASET}/tables"
    ):
        return Reply.json(200, {"kind": "bigquery#tableList", "totalItems": 0})
    return google_access_denied(DENIED)(request)


def test_access_denied_is_a_permission_mismatch_and_the_job_carries_the_identity_labels(
    bigquery: RecordingServer,
    project: OneModelProject,
    metadata_server: RecordingServer,
    test_ca: ThrowawayCA,
    tmp_path: Path,
) -> None:
    bigquery.responder = _jobs_refused
    token = "ya29.task-token-403-" + tmp_path.name
    run = project.run(token, _child_env(test_ca, metadata_server, tmp_path / "home"))

    assert _bearers(bigquery.requests) == {f"Bearer {token}"}
    inserts = [
        r
        for r in bigquery.requests
        if r.method == "POST" and r.path.startswith(f"/bigquery/v2/projects/{PROJECT}/jobs")
    ]
    assert inserts, [(r.method, r.path) for r in bigquery.requests]
    job = json.loads(inserts[0].body)
    labels = job["configuration"]["labels"]
    # What BigQuery records on the job is what job_labels() says, plus dbt's invocation id.
    assert {k: v for k, v in labels.items() if k != "dbt_invocation_id"} == job_labels(_comment())
    assert labels["sub"] == "svc-dbt_example" and labels["run_id"] == "manual__2026-01-01t00_00_00_00_00"
    assert job["configuration"]["query"]["query"].startswith('/* {"app":"idbt","dag_id":"Sales.Daily"')

    error = failure_for(OneModelProject.MODEL, _identity(), run.result, run.log, "bigquery")
    assert isinstance(error, PermissionMismatch), error
    assert error.required == ("bigquery.jobs.create",)
    assert "refused identity `svc-dbt@Example` running model `model.idbt_wh.orders`" in str(error)
    assert "retrying cannot help" in str(error)
    assert not may_refresh_and_rerun(run.result, run.log, "bigquery")
    assert run.leaks(token) == []
