"""`idbt doctor` against real servers: oidc-provider (token exchange) and moto_server (AWS web identity)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.doctor import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT, run_doctor
from airflow_provider_idbt.hooks.base import TOKEN_CACHE
from tests.fixtures.identity_servers import free_port
from tests.fixtures.oidc_provider import SECRET_CLIENT, WAREHOUSE, WORKLOAD, OidcProviderServer, write_token

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/dbt-doctor"


def oidc_conn(op: OidcProviderServer, token_file: Path, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "idbt_oidc",
            "host": op.issuer,
            "login": SECRET_CLIENT,
            "password": op.client_secret,
            "extra": {
                "audience": WAREHOUSE,
                "audience_param": "resource",
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token_file": str(token_file),
            }
            | extra,
        }
    )


def doctor(conn_id: str) -> tuple[int, str, str]:
    TOKEN_CACHE.clear()
    out, err = io.StringIO(), io.StringIO()
    code = run_doctor(conn_id, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_prints_identity_groups_and_lifetime_never_a_token(
    oidc_provider: OidcProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = oidc_provider.subject_token()
    token_file = write_token(tmp_path / "token", subject)
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_OIDC", oidc_conn(oidc_provider, token_file))
    idbt = Path(sys.executable).with_name("idbt")
    proc = subprocess.run([str(idbt), "doctor", "doctor_oidc"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert f"subject      {WORKLOAD}" in out
    assert "analytics.engineer  (from the token's claims)" in out
    assert "expires in   9m" in out or "expires in   10m" in out
    assert f"subject token from token file {token_file}" in out
    for secret in (subject, oidc_provider.client_secret):
        assert secret not in proc.stdout + proc.stderr


def test_aws_connection_with_declared_groups(
    moto_sts: str, oidc_provider: OidcProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = write_token(tmp_path / "token", oidc_provider.subject_token(audience="sts.amazonaws.com"))
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    extra = {"role_arn": ROLE, "region_name": "us-east-1", "sts_endpoint_url": moto_sts, "groups": "analytics"}
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_AWS", json.dumps({"conn_type": "idbt_aws", "extra": extra}))
    code, out, err = doctor("doctor_aws")
    assert code == EXIT_OK, err
    assert "assumed-role/dbt-doctor/idbt-doctor_aws" in out
    assert "analytics  (declared on the connection)" in out
    assert "aws_account  123456789012" in out
    assert "expires in   59m" in out or "expires in   1h00m" in out


def test_bad_connection_exits_1_with_the_fix(
    oidc_provider: OidcProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = write_token(tmp_path / "token", oidc_provider.subject_token(audience="someone-else"))
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_BAD", oidc_conn(oidc_provider, token_file))
    code, out, err = doctor("doctor_bad")
    assert code == EXIT_PERMANENT
    assert "OidcCredentialRejected" in err and "invalid_grant" in err and "subject_token" in err
    assert "OK" not in out


def test_unreachable_idp_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "idbt_oidc", "host": f"http://127.0.0.1:{free_port()}", "login": "a", "password": "b-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_DOWN", json.dumps(conn | {"extra": {"timeout": 1}}))
    code, _, err = doctor("doctor_down")
    assert code == EXIT_TRANSIENT and "run the command again" in err


def test_missing_connection_and_wrong_type(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = doctor("doctor_nowhere")
    assert code == EXIT_PERMANENT and "AIRFLOW_CONN_DOCTOR_NOWHERE" in err
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_HTTP", json.dumps({"conn_type": "http", "host": "example.test"}))
    code, _, err = doctor("doctor_http")
    assert code == EXIT_PERMANENT and "idbt_oidc, idbt_aws" in err
