"""The SQL engine's error rows (shared by SQL Server, Fabric and Synapse), SQL Server's profile and login."""

from __future__ import annotations

import ctypes
from datetime import UTC, datetime

import pytest

from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR
from airflow_provider_idbt.warehouses.spec import TOKEN_REFERENCE
from airflow_provider_idbt.warehouses.sqlserver import (
    DRIVER_MISSING,
    TOKEN_EXPIRES_ON_ENV,
    token_and_expiry,
    token_and_expiry_login,
)

SECRET = "eyJ0eXAiOiJKV1QifQ.sql-engine-payload.signature"

DOCUMENTED = [
    (
        "sqlserver",
        "The SELECT permission was denied on the object 'orders', database 'dw', schema 'raw'. (229)",
        "permission",
    ),
    (
        "sqlserver",
        "The SELECT permission was denied on the column 'ssn' of the object 'customers'. (230)",
        "permission",
    ),
    ("fabric", "CREATE TABLE permission denied in database 'dw'. (262)", "permission"),
    ("sqlserver", "The user does not have permission to perform this action. (297)", "permission"),
    (
        "sqlserver",
        "VIEW DATABASE STATE permission was denied on object 'server', database 'master'. (300)",
        "permission",
    ),
    (
        "sqlserver",
        'Cannot open database "dw" requested by the login. The login failed. (4060) (SQLDriverConnect)',
        "permission",
    ),
    ("fabric", "Login failed for user '<token-identified principal>'. (18456)", "auth"),
    ("sqlserver", "Login failed for user '<token-identified principal>'. Token is expired. (18456)", "auth"),
    ("sqlserver", "AADSTS700024: Client assertion is not within its valid time range.", "auth"),
    ("synapse", "Login failed for user '<token-identified principal>'. (18456)", "auth"),
    (
        "sqlserver",
        "Cannot open server 'sql-dw' requested by the login. Client with IP address '203.0.113.7' is not allowed "
        "to access the server. (40615)",
        "other",
    ),
    (
        "sqlserver",
        "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0) (SQLDriverConnect)",
        "other",
    ),
    # A worker without the driver, as pyodbc / unixODBC / mssql-python say it.
    ("sqlserver", "libodbc.so.2: cannot open shared object file: No such file or directory", "setup"),
    (
        "sqlserver",
        "('01000', \"[01000] [unixODBC][Driver Manager]Can't open lib 'ODBC Driver 18 for SQL Server' : file not "
        'found (0) (SQLDriverConnect)")',
        "setup",
    ),
    ("fabric", "Driver Error: Connection operation failed; DDBC Error: Failed to load the driver.", "setup"),
]


@pytest.mark.parametrize(("adapter", "message", "kind"), DOCUMENTED)
def test_documented_messages(adapter: str, message: str, kind: str) -> None:
    assert classify_message(message, adapter) == kind


@pytest.mark.parametrize(
    ("message", "grant"),
    [
        ("The SELECT permission was denied on the object 'orders', database 'dw'", "SELECT on orders"),
        (
            "VIEW DATABASE STATE permission was denied on object 'server', database 'master'.",
            "VIEW DATABASE STATE on server",
        ),
        ("CREATE TABLE permission denied in database 'dw'. (262)", "CREATE TABLE in database dw"),
    ],
)
def test_missing_grant(message: str, grant: str) -> None:
    assert missing_grant(message, "sqlserver") == grant


def test_generated_target_carries_the_token_the_expiry_and_the_driver() -> None:
    target = render_target("sqlserver", {"host": "sql-dw.database.windows.net", "database": "dw", "schema": "a"})
    assert target == {
        "type": "sqlserver",
        "authentication": "ActiveDirectoryAccessToken",
        "access_token_expires_on": "{{ env_var('IDBT_LOGIN_EXPIRES_ON') | int }}",
        "server": "sql-dw.database.windows.net",
        "database": "dw",
        "schema": "a",
        "port": 1433,
        "driver": "ODBC Driver 18 for SQL Server",
        "threads": 1,
        "access_token": TOKEN_REFERENCE,
    }


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"access_token": "x"}, r"`access_token` must not be set"),
        (
            {"authentication": "ActiveDirectoryServicePrincipal"},
            r"`authentication` is always 'ActiveDirectoryAccessToken'",
        ),
        ({"access_token_expires_on": 0}, r"unknown field `access_token_expires_on`"),
        ({"backend": "mssql-python"}, r"unknown field `backend`"),
        ({"client_secret": "s"}, r"unknown field `client_secret`"),
    ],
)
def test_a_generated_target_refuses_other_ways_in(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        render_target("sqlserver", {"server": "s", "database": "d", "schema": "a", **fields})


def test_no_role_switch_from_the_profile() -> None:
    spec = warehouse("sqlserver")
    assert spec is not None and spec.role is None and spec.extra == "sqlserver"
    with pytest.raises(ConfigurationError, match="no role to set"):
        render_target("sqlserver", {"server": "s", "database": "d", "schema": "a"}, role="db_datawriter")


def _token() -> FederatedToken:
    expires = datetime(2031, 5, 17, 3, 33, 20, tzinfo=UTC)
    identity = IdentityContext("https://login.microsoftonline.com/t/v2.0", "svc", expires, fingerprint(SECRET))
    return FederatedToken(SECRET, expires_at=expires, identity=identity)


def _has_libodbc() -> bool:
    try:
        ctypes.CDLL("libodbc.so.2")
    except OSError:
        return False
    return True


def test_login_hands_the_expiry_as_a_plain_variable() -> None:
    login = token_and_expiry(_token())
    assert login.secret_env == {TOKEN_ENV_VAR: SECRET}
    assert login.env == {TOKEN_EXPIRES_ON_ENV: "1936755200"}
    assert SECRET not in repr(login)


@pytest.mark.skipif(_has_libodbc(), reason="unixODBC is installed on this machine")
def test_login_refuses_early_on_a_worker_without_the_driver() -> None:
    with pytest.raises(ConfigurationError) as raised:
        token_and_expiry_login(_token(), {})
    assert str(raised.value) == DRIVER_MISSING
    assert SECRET not in str(raised.value)
    assert not raised.value.retryable


@pytest.mark.skipif(not _has_libodbc(), reason="unixODBC is not installed on this machine")
def test_login_passes_on_a_worker_with_unixodbc() -> None:
    assert token_and_expiry_login(_token(), {}).env == {TOKEN_EXPIRES_ON_ENV: "1936755200"}
