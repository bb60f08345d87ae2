"""Fabric's generated profile, its login and the check for the driver bundled with mssql-python."""

from __future__ import annotations

import ctypes
import sys
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.fabric import BUNDLED_DRIVER_LIBRARIES, fabric_login
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR
from airflow_provider_idbt.warehouses.spec import TOKEN_REFERENCE

SECRET = "eyJ0eXAiOiJKV1QifQ.fabric-payload.signature"
HOST = "abc123xyz.datawarehouse.fabric.microsoft.com"


def test_generated_target_carries_the_token_as_access_token() -> None:
    target = render_target("fabric", {"server": HOST, "database": "dw", "schema": "analytics", "retries": 1})
    assert target == {
        "type": "fabric",
        "authentication": "ActiveDirectoryAccessToken",
        "host": HOST,
        "database": "dw",
        "schema": "analytics",
        "threads": 1,
        "retries": 1,
        "access_token": TOKEN_REFERENCE,
    }


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, r"`host` is required"),
        ({"host": HOST, "workspace_name": "w"}, r"unknown field `workspace_name`"),
        ({"host": HOST, "access_token_expires_on": 1}, r"unknown field `access_token_expires_on`"),
        ({"host": HOST, "authentication": "CLI"}, r"`authentication` is always 'ActiveDirectoryAccessToken'"),
    ],
)
def test_a_generated_target_refuses_what_the_token_cannot_serve(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        render_target("fabric", {"database": "dw", "schema": "analytics", **fields})


def test_spec() -> None:
    spec = warehouse("fabric")
    assert spec is not None and spec.extra == "fabric" and spec.role is None
    assert "queryinsights" in spec.labels.recorded_in


def _loadable(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _token() -> FederatedToken:
    expires = datetime.now(UTC) + timedelta(minutes=30)
    identity = IdentityContext("https://login.microsoftonline.com/t/v2.0", "svc", expires, fingerprint(SECRET))
    return FederatedToken(SECRET, expires_at=expires, identity=identity)


MISSING = [name for name in BUNDLED_DRIVER_LIBRARIES if not _loadable(name)]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not MISSING, reason="every driver library loads here")
def test_login_names_the_missing_system_libraries() -> None:
    with pytest.raises(ConfigurationError) as raised:
        fabric_login(_token(), {})
    message = str(raised.value)
    assert all(name in message for name in MISSING) and "docs/warehouses/fabric.md" in message
    if "libltdl.so.7" in MISSING:
        assert "install libltdl7" in message
    assert SECRET not in message and not raised.value.retryable


@pytest.mark.skipif(bool(MISSING), reason="a driver library is missing here")
def test_login_is_the_token_itself_where_the_driver_loads() -> None:
    login = fabric_login(_token(), {})
    assert login.secret_env == {TOKEN_ENV_VAR: SECRET} and login.env == {}
