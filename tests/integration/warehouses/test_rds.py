"""PostgreSQL on RDS/Aurora with IAM authentication: the task's AWS session (moto's AssumeRoleWithWebIdentity)
signs an RDS auth token through botocore's signer; a private scram-sha-256 cluster accepts that token as the
login role's password (set from its SCRAM verifier, as RDS accepts it after checking the signature), and a
real dbt-postgres model runs with the generated profile."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from airflow_provider_idbt.dbt.json_log import read_dbt_log
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.query_comment import render_query_comment
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.operators.warehouse_login import warehouse_login
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV
from tests.fixtures.pg_warehouse import SCHEMA, copy_pg_project, create_warehouse, drop_warehouse
from tests.fixtures.postgres import PrivateCluster
from tests.integration.warehouses.test_redshift import aws_token

pytestmark = pytest.mark.integration

DB = "idbt_rds"
LOGIN_ROLE = "iam_dbt"


@pytest.fixture(scope="module")
def rds(pg_cluster: PrivateCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("rds")
    create_warehouse(pg_cluster, DB)
    if not pg_cluster.execute("select 1 from pg_roles where rolname = %s", (LOGIN_ROLE,)):
        pg_cluster.execute(f'create role "{LOGIN_ROLE}" login noinherit')
        pg_cluster.execute(f'grant transformer to "{LOGIN_ROLE}"')
    try:
        yield copy_pg_project(root / "idbt_pg")
    finally:
        drop_warehouse(pg_cluster, DB)


def profile_args(cluster: PrivateCluster) -> dict[str, object]:
    return {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": cluster.port,
        "user": LOGIN_ROLE,
        "dbname": DB,
        "schema": SCHEMA,
        "role": "transformer",
        "iam_auth": "rds",
        "region": "eu-west-1",
    }


def test_rds_token_from_the_federated_session_runs_a_real_dbt_postgres_model(
    pg_cluster: PrivateCluster, rds: Path, moto_sts: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = aws_token(moto_sts, tmp_path)
    args = profile_args(pg_cluster)
    login = warehouse_login(token, "postgres", args, None)
    (rds_token,) = login.secrets()
    # A SigV4 pre-signed `connect` URL for this host, port and user, signed with the session's own keys.
    url = urlsplit("https://" + rds_token)
    query = parse_qs(url.query)
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", pg_cluster.port, "/")
    assert query["Action"] == ["connect"] and query["DBUser"] == [LOGIN_ROLE]
    assert query["X-Amz-Security-Token"] == [token.credentials.session_token.reveal()]
    assert query["X-Amz-Credential"][0].startswith(token.credentials.access_key_id + "/")
    assert query["X-Amz-Credential"][0].endswith("/eu-west-1/rds-db/aws4_request")
    assert query["X-Amz-Expires"] == ["900"] and login.expires_at is not None
    assert login.env == {}

    pg_cluster.set_password(LOGIN_ROLE, rds_token, login.expires_at.isoformat())
    offset = pg_cluster.log_size()
    fields = {k: v for k, v in args.items() if k != "type"}
    profile = render_profile("postgres", fields, "idbt_pg", "rds")
    output = profile["idbt_pg"]["outputs"]["rds"]
    assert "iam_auth" not in output and "region" not in output  # login fields stay out of profiles.yml
    invocation = DbtInvocation(
        project_dir=str(rds),
        profiles_dir=str(write_profiles_dir(profile, tmp_path / "profiles")),
        select="stg_customers",
        target_path=str(tmp_path / "target"),
        log_path=str(tmp_path / "logs"),
        env={QUERY_COMMENT_ENV: render_query_comment({"principal": token.identity.principal})},
    )
    lines: list[str] = []
    result = SubprocessRunner().run(invocation, dict(login.secret_env), lines.append)
    assert result.status == "success", "\n".join(lines[-30:])
    assert pg_cluster.execute(f"select count(*) from {SCHEMA}.stg_customers", dbname=DB) == [(3,)]
    server_log = pg_cluster.log_since(offset)
    assert f'connection authenticated: identity="{LOGIN_ROLE}" method=scram-sha-256' in server_log
    assert "set role transformer" in server_log and token.identity.principal in server_log
    read_dbt_log(invocation.log_path, None)

    secrets = (rds_token, quote(rds_token, safe=""), *token.credentials.secrets())
    texts = ["\n".join(lines), server_log, caplog.text, repr(login)]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in secrets:
        assert not any(secret in text for text in texts)


def test_iam_auth_needs_an_aws_identity_and_the_signing_fields(pg_cluster: PrivateCluster) -> None:
    from datetime import UTC, datetime, timedelta

    from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext

    later = datetime.now(UTC) + timedelta(hours=1)
    oidc = FederatedToken("t0k", expires_at=later, identity=IdentityContext("https://idp", "svc", later, "sha256:x"))
    with pytest.raises(ConfigurationError, match="idbt_aws"):
        warehouse_login(oidc, "postgres", profile_args(pg_cluster), None)
    with pytest.raises(ConfigurationError, match="`region` is required"):
        warehouse_login(oidc, "postgres", {**profile_args(pg_cluster), "region": None}, None)
    # Without iam_auth the token itself stays the password, as before.
    assert warehouse_login(oidc, "postgres", {**profile_args(pg_cluster), "iam_auth": None}, None).secrets() == ("t0k",)
