"""Snowflake's documented error texts and missing grants; "does not exist or not authorized" is not a verdict."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.results import classify_message, missing_grant

DOCUMENTED = [
    (
        "003001 (42501): SQL access control error: Insufficient privileges to operate on table 'ORDERS'",
        "permission",
    ),
    ("Insufficient privileges to operate on schema 'RAW'", "permission"),
    ("390318 (08001): Failed to connect to DB. OAuth access token expired.", "auth"),
    ("390303 (08001): Invalid OAuth access token.", "auth"),
    ("250001 (08001): Failed to connect to DB: Incorrect username or password was specified.", "auth"),
    ("002003 (42S02): SQL compilation error: Object 'RAW.ORDERS' does not exist or not authorized.", "other"),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "snowflake") == kind


def test_missing_grant() -> None:
    assert missing_grant("Insufficient privileges to operate on table 'ORDERS'", "snowflake") == "table 'ORDERS'"
