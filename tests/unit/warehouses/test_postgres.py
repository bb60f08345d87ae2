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
