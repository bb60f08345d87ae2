"""PostgreSQL's error rows (SQLSTATE and documented texts), missing grants and the role field."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.errors import ConfigurationError

DOCUMENTED = [
    ("permission denied for table payments", "permission"),
    ("permission denied for schema raw", "permission"),
    ('permission denied for relation "orders"', "permission"),
    ("ERROR:  42501: permission denied for view v", "permission"),
    ('FATAL:  password authentication failed for user "svc"', "auth"),
    ('DETAIL:  User "svc" has an expired password.', "auth"),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "svc"', "auth"),
    ('FATAL:  role "svc" does not exist', "auth"),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "postgres") == kind


def test_missing_grant() -> None:
    assert missing_grant("Database Error in model x\n  permission denied for table payments\n", "postgres") == (
        "table payments"
    )
    assert missing_grant("relation does not exist", "postgres") is None


def test_role_goes_into_the_role_field() -> None:
    target = render_target("postgres", {"host": "h", "user": "u", "dbname": "d", "schema": "s"}, role="transformer")
    assert target["role"] == "transformer"


def test_a_warehouse_without_roles_refuses_one() -> None:
    with pytest.raises(ConfigurationError, match=r"no role to set.*warehouse_role_from_identity off"):
        render_target("duckdb", {"path": "w.duckdb"}, role="transformer")


def test_rds_iam_login_fields_stay_out_of_the_profile() -> None:
    from airflow_provider_idbt.dbt.profiles import login_args

    fields = {"host": "db.x.rds.amazonaws.com", "user": "u", "dbname": "d", "schema": "s"}
    target = render_target("postgres", {**fields, "iam_auth": "rds", "region": "eu-west-1"})
    assert "iam_auth" not in target and "region" not in target and target["password"].endswith("TOKEN') }}")
    assert login_args("postgres", {**fields, "iam_auth": "rds", "region": "eu-west-1"}) == {
        "iam_auth": "rds",
        "region": "eu-west-1",
        "host": "db.x.rds.amazonaws.com",
        "port": 5432,
        "user": "u",
    }


def test_postgres_login_is_the_token_unless_iam_auth() -> None:
    from datetime import UTC, datetime, timedelta

    from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext
    from airflow_provider_idbt.warehouses.postgres import postgres_login

    later = datetime.now(UTC) + timedelta(hours=1)
    token = FederatedToken("t0k", expires_at=later, identity=IdentityContext("https://idp", "svc", later, "sha256:x"))
    assert postgres_login(token, {}).secrets() == ("t0k",)
    with pytest.raises(ConfigurationError, match="must be one of rds"):
        postgres_login(token, {"iam_auth": "azure"})
    with pytest.raises(ConfigurationError, match="idbt_aws"):
        postgres_login(token, {"iam_auth": "rds", "host": "h", "user": "u", "region": "r"})
