"""Databricks' Unity Catalog error classes and missing grants."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.results import classify_message, missing_grant

DOCUMENTED = [
    (
        "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table 'main.raw.orders'.",
        "permission",
    ),
    ("PERMISSION_DENIED: User does not have USE SCHEMA on Schema 'main.raw'.", "permission"),
    ("Error during request to server: Invalid access token.", "auth"),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "databricks") == kind


def test_missing_grant() -> None:
    message = "User does not have SELECT on Table 'main.raw.orders'."
    assert missing_grant(message, "databricks") == "SELECT on Table 'main.raw.orders'"
