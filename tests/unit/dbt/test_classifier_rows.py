"""The failure table per adapter, from the warehouses' documented error messages; missing-grant extraction."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.results import classify_message, missing_grant

# (adapter, message as the warehouse documents it, kind)
DOCUMENTED = [
    ("postgres", "permission denied for table payments", "permission"),
    ("postgres", "permission denied for schema raw", "permission"),
    ("postgres", 'permission denied for relation "orders"', "permission"),
    ("postgres", "ERROR:  42501: permission denied for view v", "permission"),
    ("postgres", 'FATAL:  password authentication failed for user "svc"', "auth"),
    ("postgres", 'DETAIL:  User "svc" has an expired password.', "auth"),
    ("postgres", 'FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "svc"', "auth"),
    ("postgres", 'FATAL:  role "svc" does not exist', "auth"),
    ("bigquery", "Access Denied: Table p:d.t: User does not have permission to query table p:d.t.", "permission"),
    (
        "bigquery",
        "403 POST https://bigquery.googleapis.test/jobs: Access Denied: Project p: User does not have "
        "bigquery.jobs.create permission in project p.",
        "permission",
    ),
    ("bigquery", "Permission bigquery.tables.getData denied on table p.d.t (or it may not exist).", "permission"),
    ("bigquery", "403 Quota exceeded: Your project exceeded quota for free query bytes scanned.", "other"),
    ("bigquery", "403 Exceeded rate limits: too many table update operations for this table.", "other"),
    ("bigquery", "401 Request had invalid authentication credentials. Expected OAuth 2 access token.", "auth"),
    ("bigquery", "google.auth.exceptions.RefreshError: ('invalid_grant: Bad Request')", "auth"),
    (
        "snowflake",
        "003001 (42501): SQL access control error: Insufficient privileges to operate on table 'ORDERS'",
        "permission",
    ),
    ("snowflake", "Insufficient privileges to operate on schema 'RAW'", "permission"),
    ("snowflake", "390318 (08001): Failed to connect to DB. OAuth access token expired.", "auth"),
    ("snowflake", "390303 (08001): Invalid OAuth access token.", "auth"),
    ("snowflake", "250001 (08001): Failed to connect to DB: Incorrect username or password was specified.", "auth"),
    (
        "snowflake",
        "002003 (42S02): SQL compilation error: Object 'RAW.ORDERS' does not exist or not authorized.",
        "other",
    ),
    (
        "databricks",
        "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table 'main.raw.orders'.",
        "permission",
    ),
    ("databricks", "PERMISSION_DENIED: User does not have USE SCHEMA on Schema 'main.raw'.", "permission"),
    ("databricks", "Error during request to server: Invalid access token.", "auth"),
    (
        "sqlserver",
        "The SELECT permission was denied on the object 'orders', database 'dw', schema 'raw'. (229)",
        "permission",
    ),
    ("fabric", "CREATE TABLE permission denied in database 'dw'. (262)", "permission"),
    ("fabric", "Login failed for user '<token-identified principal>'. (18456)", "auth"),
    ("sqlserver", "AADSTS700024: Client assertion is not within its valid time range.", "auth"),
    ("duckdb", "Permission Error: File system LocalFileSystem has been disabled by configuration", "permission"),
]


@pytest.mark.parametrize(("adapter", "message", "kind"), DOCUMENTED)
def test_documented_messages(adapter: str, message: str, kind: str) -> None:
    assert classify_message(message, adapter) == kind


@pytest.mark.parametrize(
    ("adapter", "message", "grant"),
    [
        ("postgres", "Database Error in model x\n  permission denied for table payments\n", "table payments"),
        (
            "bigquery",
            "Permission bigquery.tables.getData denied on table p.d.t (or it may not exist).",
            "bigquery.tables.getData on table p.d.t",
        ),
        ("snowflake", "Insufficient privileges to operate on table 'ORDERS'", "table 'ORDERS'"),
        ("databricks", "User does not have SELECT on Table 'main.raw.orders'.", "SELECT on Table 'main.raw.orders'"),
        ("sqlserver", "The SELECT permission was denied on the object 'orders', database 'dw'", "SELECT on orders"),
        ("postgres", "relation does not exist", None),
    ],
)
def test_missing_grant(adapter: str, message: str, grant: str | None) -> None:
    assert missing_grant(message, adapter) == grant
