"""The SQL engine's error rows, shared by SQL Server, Fabric and Synapse."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.results import classify_message, missing_grant

DOCUMENTED = [
    (
        "sqlserver",
        "The SELECT permission was denied on the object 'orders', database 'dw', schema 'raw'. (229)",
        "permission",
    ),
    ("fabric", "CREATE TABLE permission denied in database 'dw'. (262)", "permission"),
    ("fabric", "Login failed for user '<token-identified principal>'. (18456)", "auth"),
    ("sqlserver", "AADSTS700024: Client assertion is not within its valid time range.", "auth"),
    ("synapse", "Login failed for user '<token-identified principal>'. (18456)", "auth"),
]


@pytest.mark.parametrize(("adapter", "message", "kind"), DOCUMENTED)
def test_documented_messages(adapter: str, message: str, kind: str) -> None:
    assert classify_message(message, adapter) == kind


def test_missing_grant() -> None:
    message = "The SELECT permission was denied on the object 'orders', database 'dw'"
    assert missing_grant(message, "sqlserver") == "SELECT on orders"
