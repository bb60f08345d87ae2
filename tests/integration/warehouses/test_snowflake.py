"""Snowflake with dbt-snowflake in dbt's own virtualenv: profiles dbt itself loads, and real Airflow runs against
fakesnow through a recording proxy that shows which credential arrived (fakesnow itself checks none)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider
from airflow_provider_idbt.identity.token import fingerprint
from airflow_provider_idbt.warehouses.snowflake import PROFILE_SNIPPET
from tests.fixtures.dbt_projects import REPO, dbt_env
from tests.fixtures.dbt_venv import dbt_in_venv, dbt_venv_python, load_profile, write_profile
from tests.fixtures.fakesnow_server import FakeSnow, fakesnow_server
from tests.fixtures.leak_scan import scan_files_for_secrets
from tests.fixtures.recording_proxy import INVALID_OAUTH_TOKEN, RecordingProxy, recording_proxy

PROJECT = REPO / "tests" / "fixtures" / "snowflake_project"
DAG_ID = "idbt_snowflake"
SUBJECT = "svc_snowflake_dbt"
# What a login may carry besides the token, by the connector's own names: none of them may be sent.
OTHER_CREDENTIALS = ("PASSWORD", "PRIVATE_KEY", "RAW_SAML_RESPONSE", "PASSCODE", "EXT_AUTHN_DUO_METHOD", "PROOF_KEY")


def _comment(**claims: Any) -> str:
    return json.dumps({"app": "idbt", "task_id": "t", **claims}, separators=(",", ":"))


@pytest.mark.integration
def test_generated_profile_and_snippet_load_with_dbt_snowflakes_credentials(tmp_path: Path) -> None:
    token = "tok-" + secrets.token_urlsafe(12)
    env = {"DBT_ENV_SECRET_IDBT_TOKEN": token, "IDBT_QUERY_COMMENT": _comment(sub=SUBJECT)}
    generated = render_profile(
        "snowflake",
        {"account": "myorg_acct", "database": "ANALYTICS", "warehouse": "TRANSFORMING", "schema": "MARTS"},
        "analytics",
        role="TRANSFORMER",
    )
    loaded = load_profile(write_profiles_dir(generated, tmp_path / "generated"), "analytics", env)
    assert loaded["credentials_class"] == "dbt.adapters.snowflake.connections.SnowflakeCredentials"
    fields = loaded["fields"]
    assert fields["authenticator"] == "oauth" and fields["token"] == token
    assert fields["role"] == "TRANSFORMER" and fields["account"] == "myorg-acct"  # dbt-snowflake's own rewrite
    assert json.loads(fields["query_tag"])["sub"] == SUBJECT
    assert not {"user", "password", "oauth_client_id", "oauth_client_secret", "private_key"} & set(fields)

    snippet = write_profile(tmp_path / "snippet", yaml.safe_load(PROFILE_SNIPPET))
    mine = load_profile(snippet, "analytics", {**env, "IDBT_WAREHOUSE_ROLE": "REPORTER"})["fields"]
    assert mine["authenticator"] == "oauth" and mine["token"] == token and mine["role"] == "REPORTER"
    assert json.loads(mine["query_tag"])["sub"] == SUBJECT and mine["connect_retries"] == 0
    # Outside idbt (a plain `dbt run`) the variables are unset: no role, an empty tag, still a valid profile.
    bare = load_profile(snippet, "analytics", {"DBT_ENV_SECRET_IDBT_TOKEN": token})["fields"]
    assert not bare.get("role") and not bare.get("query_tag")


# -- a real Airflow run (supervised task processes, LocalExecutor) against fakesnow ----------------------------


@dataclass
class SnowflakeRun:
    outcome: DagRunOutcome
    fakesnow: FakeSnow
    allowing: RecordingProxy
    refusing: RecordingProxy
    idp: DevIdentityProvider
    home: Path
    project: Path
    client_secret: str

    def tokens(self) -> list[str]:
        return list(self.idp.issued_tokens)

    def events(self, kind: str, task_id: str) -> list[dict[str, Any]]:
        return [e for e in self.outcome.events() if e["kind"] == kind and e["task_id"] == task_id]

    def task_log(self, task_id: str) -> str:
        return self.outcome.task_logs()[(task_id, 1)].read_text(errors="replace")


@pytest.fixture(scope="module")
def sf_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnowflakeRun]:
    home = tmp_path_factory.mktemp("sf_e2e")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_snowflake.py", dags)
    project = home / "idbt_snowflake"
    shutil.copytree(PROJECT, project)
    # The deployed manifest, parsed by dbt-snowflake itself (no connection is opened).
    dbt_in_venv(["parse", "--project-dir", str(project), "--profiles-dir", str(project)], cwd=project)
    client = DevClient("idbt-snowflake-runner", "dev-" + secrets.token_urlsafe(18), subject=SUBJECT)
    with (
        DevIdentityProvider([client], host="127.0.0.1", port=0, token_lifetime=1800) as idp,
        fakesnow_server(home / "fakesnow.log") as fakesnow,
        recording_proxy(fakesnow.port) as allowing,
        recording_proxy(fakesnow.port, refuse_logins=INVALID_OAUTH_TOKEN) as refusing,
    ):
        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_SF_PROJECT_DIR": str(project),
            "IDBT_SF_DBT_PYTHON": os.fspath(dbt_venv_python()),
            "IDBT_SF_PORT": str(allowing.port),
            "IDBT_SF_REFUSING_PORT": str(refusing.port),
            "AIRFLOW_CONN_IDBT_SF": json.dumps(idp.connection(client)),
        }
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            outcome = airflow.run_dag(DAG_ID)
        yield SnowflakeRun(outcome, fakesnow, allowing, refusing, idp, home, project, client.client_secret)


def _fakesnow_rows(port: int, sql: str) -> list[list[Any]]:
    """Ask fakesnow directly (not through the proxy) with the Snowflake connector of dbt's virtualenv."""
    script = (
        "import json, sys, snowflake.connector\n"
        "c = snowflake.connector.connect(account='idbt-test', user='reader', password='unused', host='127.0.0.1',"
        f" port={port}, protocol='http', database='IDBT_DB', schema='ANALYTICS')\n"
        "print(json.dumps([list(r) for r in c.cursor().execute(sys.argv[1]).fetchall()], default=str))\n"
    )
    done = subprocess.run(
        [os.fspath(dbt_venv_python()), "-c", script, sql], capture_output=True, text=True, env=dbt_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


@pytest.mark.e2e
def test_the_model_is_built_with_the_tasks_token_and_no_other_credential(sf_run: SnowflakeRun) -> None:
    end = [e for e in sf_run.events("model_run", "orders") if e["phase"] == "end"]
    assert end and end[-1]["status"] == "success", sf_run.outcome.output[-3000:]
    [issued] = sf_run.events("token_issued", "orders")
    logins = sf_run.allowing.logins()
    assert logins, "dbt never logged in through the proxy"
    for login in logins:
        assert login["AUTHENTICATOR"] == "OAUTH"
        # The token that arrived is the one this task was issued (same fingerprint as its token_issued event).
        assert login["TOKEN"] in sf_run.tokens()
        assert fingerprint(login["TOKEN"]) == issued["identity"]["fingerprint"]
        assert login["LOGIN_NAME"] == "" and not set(OTHER_CREDENTIALS) & set(login)
    token = logins[0]["TOKEN"]
    for record in sf_run.allowing.snapshot():
        # The token travels in the login body only: never in a header, a URL or a statement.
        if record.route != "/session/v1/login-request":
            assert token.encode() not in record.body
        assert token not in record.path and all(token not in value for value in record.headers.values())
        assert sf_run.client_secret not in json.dumps(dict(record.headers)) + record.body.decode(errors="replace")
    assert _fakesnow_rows(sf_run.fakesnow.port, "select id, status from orders order by id") == [
        [1, "completed"],
        [2, "shipped"],
    ]


@pytest.mark.e2e
def test_query_tag_and_comment_carry_the_identity(sf_run: SnowflakeRun) -> None:
    [login] = sf_run.allowing.logins()[:1]
    tag = json.loads(login["SESSION_PARAMETERS"]["QUERY_TAG"])
    assert tag["sub"] == SUBJECT and tag["task_id"] == "orders" and tag["dag_id"] == DAG_ID
    assert tag["run_id"] == sf_run.outcome.run_id and tag["model"] == "model.idbt_snowflake.orders"
    statements = sf_run.allowing.sql_texts()
    create = [s for s in statements if "create or replace" in s.lower() and ".orders" in s.lower()]
    assert create, statements
    # dbt-snowflake appends the comment (Snowflake strips a leading one from QUERY_TEXT).
    assert all(json.dumps(tag, separators=(",", ":")) in s for s in create)


@pytest.mark.e2e
def test_a_refused_token_fails_the_task_as_a_warehouse_auth_failure(sf_run: SnowflakeRun) -> None:
    assert sf_run.outcome.state == "failed"
    logins = sf_run.refusing.logins()
    # One refusal, one fresh token, a second refusal: then the try fails (no hang, no third login).
    assert len(logins) == 2 and logins[0]["TOKEN"] != logins[1]["TOKEN"]
    assert all(login["TOKEN"] in sf_run.tokens() and login["AUTHENTICATOR"] == "OAUTH" for login in logins)
    failures = sf_run.events("auth_failure", "refused")
    assert [f["action"] for f in failures] == ["refresh_token", "retry_task"], failures
    assert all(f["error_class"] == "WarehouseAuthFailed" and f["model_statements"] == 0 for f in failures)
    assert "390303" in failures[-1]["error_message"] and "Invalid OAuth access token" in failures[-1]["error_message"]
    text = sf_run.task_log("refused")
    assert "WarehouseAuthFailed" in text and "Invalid OAuth access token" in text
    end = [e for e in sf_run.events("model_run", "refused") if e["phase"] == "end"]
    assert end and end[-1]["duration_s"] < 60
    assert not sf_run.refusing.sql_texts()


@pytest.mark.e2e
def test_no_token_or_secret_anywhere(sf_run: SnowflakeRun) -> None:
    secrets_ = [*sf_run.tokens(), sf_run.client_secret]
    assert len(sf_run.tokens()) >= 2  # the first (the connection caches it for both tasks) and the refreshed one
    # AIRFLOW_HOME (the SQLite metadata DB, task logs, api-server log), the project's target/ and logs/ (dbt's
    # parse), the DAG folder and fakesnow's log.
    scanned = scan_files_for_secrets(sf_run.home, secrets_)
    assert (sf_run.home / "airflow" / "airflow.db").is_file() and scanned > 10
    for secret in secrets_:
        assert secret not in sf_run.outcome.output
