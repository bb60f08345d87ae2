"""Tests for the connection validation of identity/oidc/config.py: every problem names its field and its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.discovery import ProviderMetadata
from airflow_provider_idbt.identity.fields import is_loopback
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.transport import RetryPolicy

SECRET = "s3cr3t-value-never-shown"


def config(host: str | None = "https://idp.example.com/oauth2/default", **kwargs: Any) -> OidcClientConfig:
    login = kwargs.pop("login", "dbt-runner")
    password = kwargs.pop("password", SECRET)
    return OidcClientConfig.from_connection("prod_oidc", host, login, password, kwargs)


def field_error(**kwargs: Any) -> ConnectionFieldError:
    with pytest.raises(ConnectionFieldError) as info:
        config(**kwargs)
    assert info.value.conn_id == "prod_oidc"
    assert "connection `prod_oidc`" in str(info.value)
    assert SECRET not in str(info.value)
    return info.value


def test_valid_connection() -> None:
    cfg = config(audience="warehouse", scope="read write", groups_claim="roles", timeout="5")
    assert cfg.issuer == "https://idp.example.com/oauth2/default"
    assert (cfg.client_id, cfg.client_secret) == ("dbt-runner", SECRET)
    assert (cfg.audience, cfg.scope, cfg.groups_claim, cfg.timeout) == ("warehouse", ("read", "write"), "roles", 5.0)
    assert cfg.audience_param == "audience"
    assert cfg.cache_key == ("prod_oidc", cfg.issuer, "warehouse", "read write", "dbt-runner")


def test_defaults_and_empty_form_values() -> None:
    # The connection form stores unset fields as empty strings or nulls.
    cfg = config(audience="", scope=None, groups_claim="")
    assert (cfg.audience, cfg.scope, cfg.groups_claim, cfg.timeout, cfg.ca_bundle) == (None, (), "groups", 10.0, None)


def test_secret_never_in_repr() -> None:
    cfg = config()
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)


@pytest.mark.parametrize(
    "host",
    ["http://127.0.0.1:8080", "http://127.10.0.3/realm", "http://[::1]:9000", "http://localhost:5556/dex"],
)
def test_plain_http_allowed_on_loopback(host: str) -> None:
    assert config(host).issuer == host


@pytest.mark.parametrize("host", ["http://idp.example.com", "http://10.0.0.5:8080", "http://localhost.evil.com"])
def test_plain_http_refused_elsewhere(host: str) -> None:
    error = field_error(host=host)
    assert error.field == "host"
    assert "https" in str(error)


@pytest.mark.parametrize("host", ["idp.example.com", "ftp://idp.example.com", "https://"])
def test_issuer_must_be_a_url(host: str) -> None:
    assert field_error(host=host).field == "host"


def test_issuer_without_query() -> None:
    assert "query" in str(field_error(host="https://idp.example.com/?tenant=1"))


def test_issuer_from_extra_for_uri_style_connections() -> None:
    assert config(None, issuer="https://idp.example.com").issuer == "https://idp.example.com"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"host": None}, "host"), ({"login": None}, "login"), ({"password": None}, "password")],
)
def test_required_fields(kwargs: dict[str, Any], field: str) -> None:
    error = field_error(**kwargs)
    assert error.field == field
    assert "is missing" in str(error)


def test_client_id_from_extra() -> None:
    assert config(login=None, client_id="from-extra").client_id == "from-extra"


@pytest.mark.parametrize("key", ["redirect_uri", "username", "device_code", "code_verifier", "refresh_token"])
def test_interactive_flow_keys_refused(key: str) -> None:
    error = field_error(**{key: "x"})
    assert error.field == key
    assert "client-credentials" in str(error)


def test_other_grant_types_refused() -> None:
    assert field_error(grant_type="password").field == "grant_type"
    assert config(grant_type="client_credentials").client_id == "dbt-runner"


def test_secret_in_extra_refused() -> None:
    error = field_error(client_secret=SECRET + "-2")
    assert error.field == "client_secret"
    assert "password field" in str(error)


def test_scope_forms() -> None:
    assert config(scope=["a", "b"]).scope == ("a", "b")
    assert field_error(scope=42).field == "scope"


@pytest.mark.parametrize("timeout", ["abc", 0, -1, 1000])
def test_bad_timeout(timeout: Any) -> None:
    assert field_error(timeout=timeout).field == "timeout"


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    assert field_error(ca_bundle=str(tmp_path / "missing.pem")).field == "ca_bundle"
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert config(ca_bundle=str(bundle)).ca_bundle == str(bundle)


def test_audience_param() -> None:
    assert config(audience_param="resource").audience_param == "resource"
    assert field_error(audience_param="aud").field == "audience_param"


def test_unknown_keys_are_only_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    config(audiance="typo")
    assert "audiance" in caplog.text


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("localhost.example.com", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        ((), "client_secret_basic"),
        (("none",), "client_secret_basic"),
        (("client_secret_post",), "client_secret_post"),
        (("client_secret_post", "client_secret_basic"), "client_secret_basic"),
        (("private_key_jwt", "client_secret_post"), "client_secret_post"),
    ],
)
def test_client_auth_method_choice(methods: tuple[str, ...], expected: str) -> None:
    assert ProviderMetadata("https://i", "https://i/t", "https://i/k", methods).auth_method == expected


def test_retry_backoff_doubles() -> None:
    policy = RetryPolicy(attempts=4, backoff=0.5)
    assert [policy.wait(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
