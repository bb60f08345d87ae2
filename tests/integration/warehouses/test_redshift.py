"""Redshift logins from a task's AWS credentials: moto_server answers GetClusterCredentials, a recording proxy in
front of it proves each call was signed with the federated session; dbt-redshift's own credentials class loads
the profiles; redshift_connector (dbt-redshift's driver) logs in to a real PostgreSQL with the issued password.

moto does not implement Redshift Serverless: the proxy answers `RedshiftServerless.GetCredentials` itself, in
the service's JSON wire form, after checking the request's SigV4 session token.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from airflow_provider_idbt.dbt.profiles import render_profile
from airflow_provider_idbt.errors import ConfigurationError, CredentialRejected, IdentityProviderUnavailable
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.aws.exchanger import AwsFederatedToken, AwsWebIdentityExchanger
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.identity.transport import RetryPolicy
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR
from airflow_provider_idbt.warehouses.redshift import PROFILE_SNIPPET, USER_ENV, WAREHOUSE
from tests.fixtures.dbt_projects import dbt_env
from tests.fixtures.dbt_venv import dbt_venv_bin, load_profile, write_profile
from tests.fixtures.postgres import PG_BIN, PrivateCluster, _as_postgres

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/dbt-prod"
CLUSTER = "analytics"
DB_USER = "dbt_alice"


def web_identity_token() -> str:
    now = int(time.time())
    claims = {"iss": "https://k8s.example", "sub": "system:serviceaccount:analytics:dbt", "aud": "sts.amazonaws.com"}
    return jwt.encode({**claims, "iat": now, "exp": now + 600}, secrets.token_hex(16), algorithm="HS256")


def aws_token(sts_endpoint: str, tmp: Path) -> AwsFederatedToken:
    """A real AssumeRoleWithWebIdentity against moto: what the task's `idbt_aws` connection hands over."""
    file = tmp / "web-identity-token"
    file.write_text(web_identity_token())
    extra = {
        "role_arn": ROLE,
        "region_name": "eu-west-1",
        "sts_endpoint_url": sts_endpoint,
        "subject_token_source": "file",
        "subject_token_file": str(file),
    }
    config = AwsWebIdentityConfig.from_connection("idbt_aws_prod", None, None, extra)
    return AwsWebIdentityExchanger(config, retry=RetryPolicy(attempts=2, backoff=0.01)).fetch()


@dataclass
class Seen:
    target: str
    access_key: str
    security_token: str | None
    body: dict[str, Any]


@dataclass
class RecordingProxy:
    """Forwards to moto and records who signed each call; queued (status, body) faults answer instead."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    faults: list[tuple[int, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def start(self) -> RecordingProxy:
        outer, up = self, urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target") or parse_qs(body.decode()).get("Action", [""])[0]
                auth = self.headers.get("Authorization", "")
                key = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else ""
                fields = json.loads(body) if self.headers.get("X-Amz-Target") else parse_qs(body.decode())
                outer.seen.append(Seen(target, key, self.headers.get("X-Amz-Security-Token"), fields))
                if outer.faults:
                    status, text = outer.faults.pop(0)
                    return self._answer(status, text.encode(), "text/xml")
                if target == "RedshiftServerless.GetCredentials":
                    return self._serverless(fields)
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                self._answer(answer.status, answer.read(), answer.getheader("Content-Type") or "text/xml")

            def _serverless(self, fields: dict[str, Any]) -> None:
                if not self.headers.get("X-Amz-Security-Token"):
                    return self._answer(403, b'{"__type":"AccessDeniedException","message":"no session"}', "")
                password = "rs-" + secrets.token_urlsafe(24)
                outer.issued.append(password)
                expires = time.time() + int(fields.get("durationSeconds", 900))
                doc = {"dbUser": "IAMR:dbt-prod", "dbPassword": password, "expiration": expires}
                self._answer(200, json.dumps(doc).encode(), "application/x-amz-json-1.1")

            def _answer(self, status: int, payload: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def redshift_error(code: str, message: str) -> str:
    return (
        '<ErrorResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>6ac1b6a4-6f5e-4c52-9a1c-0f2b0f3c5d1e</RequestId></ErrorResponse>"
    )


@pytest.fixture(scope="module")
def moto_cluster(moto_sts: str) -> str:
    """A provisioned cluster in moto (created with moto's dummy keys: the call under test is the login)."""
    import botocore.session

    client = botocore.session.Session().create_client(
        "redshift", region_name="eu-west-1", endpoint_url=moto_sts, aws_access_key_id="x", aws_secret_access_key="x"
    )
    client.create_cluster(
        ClusterIdentifier=CLUSTER, NodeType="ra3.xlplus", MasterUsername="admin", MasterUserPassword="Adm1nadmin"
    )
    return moto_sts


@pytest.fixture
def proxy(moto_cluster: str) -> Iterator[RecordingProxy]:
    server = RecordingProxy(moto_cluster).start()
    yield server
    server.close()


@pytest.fixture
def token(moto_sts: str, tmp_path: Path) -> AwsFederatedToken:
    return aws_token(moto_sts, tmp_path)


def cluster_args(proxy: RecordingProxy, **more: Any) -> dict[str, Any]:
    return {
        "cluster_identifier": CLUSTER,
        "db_user": DB_USER,
        "db_name": "dw",
        "region": "eu-west-1",
        "endpoint_url": proxy.url,
        **more,
    }


def login_of(token: FederatedToken, args: dict[str, Any]) -> Any:
    assert WAREHOUSE.login is not None
    return WAREHOUSE.login(token, args)


# -- the login ----------------------------------------------------------------------------------------------------


def test_get_cluster_credentials_is_signed_with_the_tasks_federated_session(
    proxy: RecordingProxy, token: AwsFederatedToken, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login = login_of(token, cluster_args(proxy, db_groups="analysts, loaders", duration_seconds=1200))
    [call] = proxy.seen
    assert call.target == "GetClusterCredentials"
    assert call.access_key == token.credentials.access_key_id
    assert call.security_token == token.credentials.session_token.reveal()
    assert call.body["DbUser"] == [DB_USER] and call.body["ClusterIdentifier"] == [CLUSTER]
    assert call.body["DbGroups.DbGroup.1"] == ["analysts"] and call.body["DurationSeconds"] == ["1200"]
    assert login.env == {USER_ENV: f"IAM:{DB_USER}"}  # moto, like Redshift, prefixes the user it vouches for
    (password,) = login.secrets()
    assert set(login.secret_env) == {TOKEN_ENV_VAR} and len(password) >= 16
    assert login.expires_at is not None
    assert timedelta(seconds=1150) < login.expires_at - datetime.now(UTC) <= timedelta(seconds=1200)
    for secret in (password, *token.credentials.secrets()):
        assert secret not in repr(login) and secret not in caplog.text


def test_auto_create_gets_the_iama_user(proxy: RecordingProxy, token: AwsFederatedToken) -> None:
    assert login_of(token, cluster_args(proxy, auto_create=True)).env[USER_ENV] == f"IAMA:{DB_USER}"


def test_access_denied_fails_at_once_with_the_missing_permission(
    proxy: RecordingProxy, token: AwsFederatedToken
) -> None:
    denied = redshift_error("AccessDenied", "User is not authorized to perform GetClusterCredentials")
    proxy.faults.append((403, denied))
    with pytest.raises(CredentialRejected, match=r"denied \(AccessDenied.*redshift:GetClusterCredentials") as info:
        login_of(token, cluster_args(proxy))
    assert not info.value.retryable and len(proxy.seen) == 1


def test_throttling_is_retried_and_a_lasting_outage_is_retryable(
    proxy: RecordingProxy, token: AwsFederatedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_provider_idbt.identity.aws.database as database

    monkeypatch.setattr(database, "RetryPolicy", lambda: RetryPolicy(attempts=3, backoff=0.01))
    proxy.faults.append((400, redshift_error("Throttling", "Rate exceeded")))
    assert login_of(token, cluster_args(proxy)).env[USER_ENV] == f"IAM:{DB_USER}"
    assert len(proxy.seen) == 2
    proxy.faults.extend([(503, redshift_error("ServiceUnavailable", "try later"))] * 3)
    with pytest.raises(IdentityProviderUnavailable, match="after 3 attempt") as info:
        login_of(token, cluster_args(proxy))
    assert info.value.retryable


def test_an_unknown_cluster_is_a_configuration_error(proxy: RecordingProxy, token: AwsFederatedToken) -> None:
    with pytest.raises(ConfigurationError, match="ClusterNotFound"):
        login_of(token, cluster_args(proxy, cluster_identifier="nope"))


def test_serverless_get_credentials(proxy: RecordingProxy, token: AwsFederatedToken) -> None:
    args = {"workgroup_name": "analytics-wg", "db_name": "dw", "region": "eu-west-1", "endpoint_url": proxy.url}
    login = login_of(token, args)
    [call] = proxy.seen
    assert call.target == "RedshiftServerless.GetCredentials"
    assert call.body == {"workgroupName": "analytics-wg", "dbName": "dw", "durationSeconds": 900}
    assert call.security_token == token.credentials.session_token.reveal()
    assert login.env == {USER_ENV: "IAMR:dbt-prod"} and login.secrets() == (proxy.issued[0],)


# -- the profiles, as dbt-redshift builds them -------------------------------------------------------------------


def test_generated_profile_and_snippet_load_with_dbt_redshifts_credentials(tmp_path: Path) -> None:
    fields = {"host": "analytics.abc.eu-west-1.redshift.amazonaws.com", "dbname": "dw", "schema": "analytics"}
    write_profile(tmp_path / "generated", render_profile("redshift", fields, "analytics", "prod"))
    (tmp_path / "snippet").mkdir()
    (tmp_path / "snippet" / "profiles.yml").write_text(PROFILE_SNIPPET)
    password = "rs-" + secrets.token_urlsafe(24)
    env = {USER_ENV: "IAM:dbt_alice", TOKEN_ENV_VAR: password}
    for folder in ("generated", "snippet"):
        loaded = load_profile(tmp_path / folder, "analytics", env)
        assert loaded["credentials_class"] == "dbt.adapters.redshift.connections.RedshiftCredentials"
        got = loaded["fields"]
        assert (got["method"], got["user"], got["password"]) == ("database", "IAM:dbt_alice", password)
        assert got["port"] == 5439 and got["database"] == "dw"


# -- dbt-redshift logging in to a real PostgreSQL with the issued password ---------------------------------------


@pytest.fixture(scope="module")
def md5_cluster() -> Iterator[PrivateCluster]:
    """A private cluster whose IAM users log in with md5 (a password mechanism Redshift offers too).

    redshift_connector 2.1's SCRAM client reads PostgreSQL's mechanism list with a trailing empty name, which
    scramp refuses ("The mechanism name is not supported"), so SCRAM cannot be used with it.
    """
    cluster = PrivateCluster.start()
    try:
        hba = cluster.data_dir / "pg_hba.conf"
        hba.write_text('host all "IAM:dbt_alice" 127.0.0.1/32 md5\n' + hba.read_text())
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "reload")
        cluster.execute('create role "IAM:dbt_alice" login')
        yield cluster
    finally:
        cluster.stop()


def test_dbt_redshift_logs_in_to_postgresql_with_the_moto_issued_password(
    md5_cluster: PrivateCluster, proxy: RecordingProxy, token: AwsFederatedToken, tmp_path: Path
) -> None:
    login = login_of(token, cluster_args(proxy))
    (password,) = login.secrets()
    user = login.env[USER_ENV]
    # The server stores the md5 verifier only (md5 of password + user), computed here: no password in its log.
    verifier = "md5" + hashlib.md5((password + user).encode()).hexdigest()
    md5_cluster.execute('alter role "IAM:dbt_alice" password %s', (verifier,))
    fields = {"host": "127.0.0.1", "port": md5_cluster.port, "dbname": "postgres", "schema": "analytics"}
    write_profile(tmp_path / "p", render_profile("redshift", {**fields, "sslmode": "disable"}, "analytics", "prod"))
    offset = md5_cluster.log_size()

    def dbt_debug(secret: str) -> tuple[str, str]:
        done = subprocess.run(
            [os.fspath(dbt_venv_bin("dbt")), "debug", "--connection", "--profiles-dir", str(tmp_path / "p"),
             "--profile", "analytics"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
            env=dbt_env({**login.env, TOKEN_ENV_VAR: secret, "DBT_LOG_PATH": str(tmp_path / "logs")}),
        )  # fmt: skip
        return done.stdout + done.stderr, md5_cluster.log_since(offset)

    output, server_log = dbt_debug(password)
    # PostgreSQL accepted the moto-issued password for the IAM user, then refused Redshift's own startup
    # parameters: the furthest a Redshift client gets with a PostgreSQL server.
    assert 'connection authenticated: identity="IAM:dbt_alice" method=md5' in server_log
    assert 'unrecognized configuration parameter "client_protocol_version"' in output
    offset = md5_cluster.log_size()
    output_bad, server_log_bad = dbt_debug("rs-wrong-" + secrets.token_urlsafe(8))
    assert 'password authentication failed for user "IAM:dbt_alice"' in server_log_bad + output_bad
    scanned = [output, output_bad, server_log, server_log_bad]
    scanned += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in (password, *token.credentials.secrets()):
        assert not any(secret in text for text in scanned)
