"""dbt-databricks' own SQL connector against a loopback HTTPS endpoint: the bearer, the query tags, classified refusals.

No local stand-in speaks Databricks' Thrift-over-HTTP SQL protocol, so the profile's host and the connector's
`_connection_uri` point at a recording HTTPS server (a certificate from the test CA) that refuses OpenSession
the way a workspace does: HTTP 401/403 with the reason in `x-databricks-reason-phrase`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_provider_idbt.dbt.failures import failure_for, may_refresh_and_rerun
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.query_comment import QueryCommentOptions, query_comment_fields, render_query_comment
from airflow_provider_idbt.errors import PermissionMismatch, WarehouseAuthFailed
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses.databricks import PROFILE_SNIPPET
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV, TOKEN_ENV_VAR
from tests.fixtures.dbt_venv import load_profile
from tests.fixtures.recording_https import OneModelProject, Recorded, RecordingServer, Reply, Responder
from tests.fixtures.test_ca import ThrowawayCA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HTTP_PATH = "/sql/1.0/warehouses/abcdef1234567890"
INVALID = "Invalid access token."
NO_USE = "PERMISSION_DENIED: User does not have CAN USE on SQL warehouse 'abcdef1234567890'."


def _refusing(status: int, reason: str) -> Responder:
    def reply(request: Recorded) -> Reply:
        # dbt-databricks' discovery probe and the SDK ask this unauthenticated: a plain workspace has no SPOG.
        if request.path == "/.well-known/databricks-config":
            return Reply.json(200, {})
        return Reply(status, b"", {"x-databricks-reason-phrase": reason, "Content-Type": "text/plain"})

    return reply


@pytest.fixture(scope="module")
def workspace_server(test_ca: ThrowawayCA) -> Iterator[RecordingServer]:
    server = RecordingServer(_refusing(401, INVALID), test_ca, "databricks").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(workspace_server: RecordingServer, tmp_path_factory: pytest.TempPathFactory) -> OneModelProject:
    args = {
        "host": f"127.0.0.1:{workspace_server.port}",
        "http_path": HTTP_PATH,
        "catalog": "main",
        "schema": "analytics",
        "connect_retries": 0,
        # The connector builds https://<host>:443/<path>; the loopback port goes in its own override instead.
        # Few attempts and a short socket timeout: a mistake fails the test instead of hanging it.
        "connection_parameters": {
            "_connection_uri": workspace_server.url + HTTP_PATH,
            "_retry_stop_after_attempts_count": 2,
            "_socket_timeout": 15,
        },
    }
    return OneModelProject(tmp_path_factory.mktemp("dbx"), "databricks", args)


@pytest.fixture
def workspace(workspace_server: RecordingServer) -> RecordingServer:
    workspace_server.clear()
    return workspace_server


def _identity() -> IdentityContext:
    return IdentityContext("https://idp.test", "svc-dbt@example.com", datetime(2030, 1, 1, tzinfo=UTC), "sha256:t")


def _comment() -> dict[str, object]:
    keys = {"dag_id": "sales", "run_id": "manual__2026-01-01T00:00:00+00:00", "task_id": "orders"}
    return query_comment_fields(
        {**keys, "try_number": 1, "map_index": -1}, OneModelProject.MODEL, _identity(), QueryCommentOptions()
    )


def _child_env(ca: ThrowawayCA, home: Path) -> dict[str, str]:
    # A home whose ~/.databrickscfg holds someone else's token: the SDK must not reach for it.
    home.mkdir(exist_ok=True)
    (home / ".databrickscfg").write_text("[DEFAULT]\nhost = https://127.0.0.1:9\ntoken = dapi-bait-from-home\n")
    return {
        QUERY_COMMENT_ENV: render_query_comment(_comment()),
        "REQUESTS_CA_BUNDLE": str(ca.bundle),
        "SSL_CERT_FILE": str(ca.bundle),
        "HOME": str(home),
    }


def test_generated_profile_and_snippet_load_as_dbt_databricks_credentials(tmp_path: Path) -> None:
    token = "dapi-profile-check"
    args = {"host": "adb-1.azuredatabricks.net", "http_path": HTTP_PATH, "database": "main", "schema": "analytics"}
    generated = write_profiles_dir(render_profile("databricks", args, "p"), tmp_path / "gen")
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "profiles.yml").write_text(PROFILE_SNIPPET)
    env = {TOKEN_ENV_VAR: token, QUERY_COMMENT_ENV: render_query_comment(_comment())}
    tags = {}
    for directory, profile in ((generated, "p"), (tmp_path / "own", "analytics")):
        loaded = load_profile(directory, profile, env)
        fields = loaded["fields"]
        assert loaded["credentials_class"] == "dbt.adapters.databricks.credentials.DatabricksCredentials"
        assert fields["token"] == token and fields["database"] == "main" and fields["schema"] == "analytics"
        assert fields["_credentials_manager"]["token"] == token  # the PAT path: no OAuth client, no secret
        assert not {"client_secret", "azure_client_secret", "auth_type"} & {k for k, v in fields.items() if v}
        tags[profile] = fields.get("query_tags")
    # The generated profile tags queries with the comment's keys, as strings the adapter accepts.
    assert tags == {
        "p": '{"app": "idbt", "dag_id": "sales", "task_id": "orders", "run_id": "manual__2026-01-01T00_00_00+00_00", '
        '"try_number": "1", "map_index": "-1", "sub": "svc-dbt@example.com"}',
        "analytics": None,
    }


def _thrift_string_after(body: bytes, key: bytes) -> bytes:
    """The string value that follows ``key`` in a Thrift binary map (a 4-byte big-endian length, then bytes)."""
    at = body.index(key) + len(key)
    length = int.from_bytes(body[at : at + 4], "big")
    return body[at + 4 : at + 4 + length]


def _bearers(requests: list[Recorded]) -> set[str | None]:
    return {r.authorization for r in requests if r.path != "/.well-known/databricks-config"}


def test_an_invalid_token_is_an_auth_failure_and_the_session_carries_the_query_tags(
    workspace: RecordingServer, project: OneModelProject, test_ca: ThrowawayCA, tmp_path: Path
) -> None:
    workspace.responder = _refusing(401, INVALID)
    token = "dapi-task-token-401-" + tmp_path.name
    run = project.run(token, _child_env(test_ca, tmp_path / "home"))

    sessions = [r for r in workspace.requests if r.method == "POST" and r.path == HTTP_PATH]
    assert sessions, [(r.method, r.path) for r in workspace.requests]
    assert _bearers(workspace.requests) == {f"Bearer {token}"}
    assert all(b"dapi-bait-from-home" not in r.body for r in workspace.requests)
    assert b"OpenSession" in sessions[0].body
    tags = _thrift_string_after(sessions[0].body, b"QUERY_TAGS").decode()
    assert tags.startswith("@@dbt_databricks_version:")
    assert (
        ",app:idbt,dag_id:sales,task_id:orders,run_id:manual__2026-01-01T00_00_00+00_00,try_number:1,map_index:-1,"
        "sub:svc-dbt@example.com" in tags
    )

    error = failure_for(OneModelProject.MODEL, _identity(), run.result, run.log, "databricks")
    assert isinstance(error, WarehouseAuthFailed), error
    assert "rejected the token of identity `svc-dbt@example.com`" in str(error) and INVALID in str(error)
    assert may_refresh_and_rerun(run.result, run.log, "databricks")
    assert run.leaks(token) == [] and token not in str(error)


def test_no_use_of_the_warehouse_is_a_permission_mismatch(
    workspace: RecordingServer, project: OneModelProject, test_ca: ThrowawayCA, tmp_path: Path
) -> None:
    workspace.responder = _refusing(403, NO_USE)
    token = "dapi-task-token-403-" + tmp_path.name
    run = project.run(token, _child_env(test_ca, tmp_path / "home"))

    assert _bearers(workspace.requests) == {f"Bearer {token}"}
    error = failure_for(OneModelProject.MODEL, _identity(), run.result, run.log, "databricks")
    assert isinstance(error, PermissionMismatch), error
    assert "CAN USE on SQL warehouse" in str(error) and "retrying cannot help" in str(error)
    assert not may_refresh_and_rerun(run.result, run.log, "databricks")
    assert run.leaks(token) == []
