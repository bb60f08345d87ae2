"""OidcTokenHook's connection handling that needs no identity provider."""

from __future__ import annotations

import json

import pytest

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError
from airflow_provider_idbt.hooks.oidc import OidcTokenHook


def test_missing_connection_is_a_permanent_configuration_error() -> None:
    with pytest.raises(
        ConfigurationError, match=r"connection `idbt_nowhere` is not defined.*AIRFLOW_CONN_IDBT_NOWHERE"
    ):
        OidcTokenHook("idbt_nowhere").get_token()


def test_connection_missing_a_field_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_IDBT_NO_SECRET",
        json.dumps({"conn_type": "idbt_oidc", "host": "https://idp.example.test", "login": "runner"}),
    )
    with pytest.raises(ConnectionFieldError) as caught:
        OidcTokenHook("idbt_no_secret").get_token()
    assert caught.value.field == "password" and not caught.value.retryable


def test_plain_http_issuer_is_refused_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_IDBT_HTTP",
        json.dumps({"conn_type": "idbt_oidc", "host": "http://idp.example.test", "login": "a", "password": "b"}),
    )
    with pytest.raises(ConnectionFieldError, match="https"):
        OidcTokenHook("idbt_http").get_config()
