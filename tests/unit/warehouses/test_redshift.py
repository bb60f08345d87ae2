"""Redshift's generated profile (method: database, user from the login), login-field checks and error rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_idbt.dbt.profiles import login_args, render_target
from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext
from airflow_provider_idbt.warehouses.redshift import USER_REFERENCE, WAREHOUSE, redshift_login
from airflow_provider_idbt.warehouses.spec import TOKEN_REFERENCE

FIELDS = {"host": "c.abc.eu-west-1.redshift.amazonaws.com", "dbname": "dw", "schema": "analytics"}
LATER = datetime.now(UTC) + timedelta(hours=1)
OIDC = FederatedToken("t0k", expires_at=LATER, identity=IdentityContext("https://idp", "svc", LATER, "sha256:x"))


def test_generated_target_logs_in_with_the_database_method() -> None:
    target = render_target("redshift", {**FIELDS, "cluster_identifier": "c", "db_user": "alice", "region": "r"})
    assert target == {
        "type": "redshift",
        "method": "database",
        "user": USER_REFERENCE,
        "host": FIELDS["host"],
        "dbname": "dw",
        "schema": "analytics",
        "port": 5439,
        "threads": 1,
        "password": TOKEN_REFERENCE,
    }


@pytest.mark.parametrize(("field", "value"), [("user", "alice"), ("method", "iam"), ("password", "x")])
def test_the_login_owns_user_method_and_password(field: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"`{field}`"):
        render_target("redshift", {**FIELDS, field: value})


def test_login_args_carry_the_defaults() -> None:
    args = login_args("redshift", {**FIELDS, "cluster_identifier": "c", "db_user": "alice"})
    assert args["cluster_identifier"] == "c" and args["auto_create"] is False and args["duration_seconds"] == 900
    assert "host" not in args


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "exactly one"),
        ({"cluster_identifier": "c", "workgroup_name": "w"}, "exactly one"),
        ({"cluster_identifier": "c"}, "`db_user` is required"),
        ({"workgroup_name": "w", "db_user": "alice"}, "provisioned clusters"),
        ({"cluster_identifier": "c", "db_user": "a", "bogus": 1}, "unknown field `bogus`"),
        ({"cluster_identifier": "c", "db_user": "a"}, "idbt_aws"),
    ],
)
def test_login_refuses_what_cannot_work(args: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as info:
        redshift_login(OIDC, args)
    assert "t0k" not in str(info.value)


DOCUMENTED = [
    ('FATAL:  password authentication failed for user "IAM:alice"', "auth"),
    ("IAM Authentication failed for user IAM:alice", "auth"),
    ('FATAL:  user "IAM:alice" does not exist', "auth"),
    ("permission denied for relation payments", "permission"),
    ("permission denied for schema raw", "permission"),
    ("ERROR: must be owner of relation orders", "permission"),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "redshift") == kind


def test_missing_grant_and_spec() -> None:
    assert missing_grant("permission denied for relation payments", "redshift") == "relation payments"
    assert WAREHOUSE.extra == "redshift" and WAREHOUSE.login is redshift_login
