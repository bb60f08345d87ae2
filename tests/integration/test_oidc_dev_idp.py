"""The OIDC exchanger and OidcTokenHook against a real DevIdentityProvider on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests

from airflow_provider_idbt.devidp.provider import DevIdentityProvider
from airflow_provider_idbt.errors import (
    ConfigurationError,
    CredentialRejected,
    DevTokenRefused,
    IdentityProviderUnavailable,
)
from airflow_provider_idbt.hooks.base import TOKEN_CACHE
from airflow_provider_idbt.hooks.oidc import OidcTokenHook
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.oidc.exchanger import OidcClientCredentialsExchanger, OidcCredentialRejected
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.identity_servers import DEV_CLIENT_ID, DEV_GROUPS, free_port

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.05)


def secret_of(idp: DevIdentityProvider) -> str:
    return idp.clients[DEV_CLIENT_ID].client_secret


def exchanger(
    idp: DevIdentityProvider, *, password: str | None = None, **extra: object
) -> OidcClientCredentialsExchanger:
    config = OidcClientConfig.from_connection(
        "dev_oidc", idp.issuer, DEV_CLIENT_ID, password or secret_of(idp), {"audience": "idbt-dev"} | extra
    )
    return OidcClientCredentialsExchanger(config, retry=FAST_RETRY)


@pytest.fixture
def allow_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDBT_ALLOW_DEV_IDP", "1")


def assert_no_secret(texts: list[str], idp: DevIdentityProvider) -> None:
    secrets = [secret_of(idp), *idp.issued_tokens]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_fetch_returns_verified_token_with_groups(
    dev_idp: DevIdentityProvider, allow_dev: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = exchanger(dev_idp, scope="warehouse.read").fetch()
    identity = token.identity
    assert identity.issuer == dev_idp.issuer
    assert identity.subject == identity.principal == DEV_CLIENT_ID
    assert identity.groups == DEV_GROUPS
    assert identity.audience == ("idbt-dev",)
    assert identity.attributes["idbt_dev"] == "true"
    assert token.scope == ("warehouse.read",)
    assert timedelta(minutes=9) < token.remaining() <= timedelta(minutes=10)
    assert token.reveal() == dev_idp.issued_tokens[-1]
    claims = jwt.decode(token.reveal(), options={"verify_signature": False})
    assert claims["idbt_dev"] is True
    assert token.expires_at == datetime.fromtimestamp(claims["exp"], UTC)
    assert_no_secret([repr(token), str(token), repr(identity), caplog.text], dev_idp)


def test_client_secret_post_is_accepted_too(dev_idp: DevIdentityProvider, allow_dev: None) -> None:
    # The dev IdP takes both methods; the exchanger picks Basic, so this checks the server's post path.
    response = requests.post(
        f"{dev_idp.issuer}/token",
        data={"grant_type": "client_credentials", "client_id": DEV_CLIENT_ID, "client_secret": secret_of(dev_idp)},
        timeout=5,
    )
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"


def test_wrong_secret_is_rejected_with_the_idps_description(
    dev_idp: DevIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + secret_of(dev_idp)[::-1]
    with pytest.raises(OidcCredentialRejected) as info:
        exchanger(dev_idp, password=wrong).fetch()
    error = info.value
    assert isinstance(error, CredentialRejected) and not error.retryable
    assert (error.error, error.status) == ("invalid_client", 401)
    assert error.error_description == "client authentication failed: unknown client or wrong secret"
    assert "invalid_client: client authentication failed" in str(error)
    assert "dev_oidc" in str(error) and "password" in str(error)
    assert wrong not in str(error) and wrong not in caplog.text
    assert_no_secret([str(error), repr(error), caplog.text], dev_idp)


def test_unknown_audience_is_rejected(dev_idp: DevIdentityProvider) -> None:
    with pytest.raises(OidcCredentialRejected, match="invalid_target") as info:
        exchanger(dev_idp, audience="someone-elses-api").fetch()
    assert "extra `audience`" in str(info.value)


def test_dev_token_is_refused_without_opt_in(dev_idp: DevIdentityProvider) -> None:
    with pytest.raises(DevTokenRefused, match="IDBT_ALLOW_DEV_IDP=1") as info:
        exchanger(dev_idp).fetch()
    assert_no_secret([str(info.value)], dev_idp)


def test_idp_down_is_retryable() -> None:
    config = OidcClientConfig.from_connection(
        "down_oidc", f"http://127.0.0.1:{free_port()}", "someone", "some-secret-value", {}
    )
    with pytest.raises(IdentityProviderUnavailable, match="after 3 attempt") as info:
        OidcClientCredentialsExchanger(config, retry=FAST_RETRY).fetch()
    assert info.value.retryable
    assert "some-secret-value" not in str(info.value)


def test_idp_stopping_between_discovery_and_token(dev_idp: DevIdentityProvider, allow_dev: None) -> None:
    ex = exchanger(dev_idp)
    ex.fetch()  # discovery now cached
    dev_idp.stop()
    with pytest.raises(IdentityProviderUnavailable, match="token endpoint"):
        ex.fetch()


def test_rotated_signing_key_is_picked_up(dev_idp: DevIdentityProvider, allow_dev: None) -> None:
    ex = exchanger(dev_idp)
    first = ex.fetch()
    new_kid = dev_idp.rotate_key(keep_previous=False)
    second = ex.fetch()
    assert jwt.get_unverified_header(second.reveal())["kid"] == new_kid
    assert first.fingerprint != second.fingerprint


def test_token_lifetime_shorter_than_min_ttl(
    dev_idp: DevIdentityProvider, allow_dev: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook_for(dev_idp, "IDBT_TEST_SHORT", monkeypatch)
    with pytest.raises(ConfigurationError, match="shorter than the requested min_ttl"):
        hook.get_token(min_ttl=timedelta(hours=2))


def _hook_for(idp: DevIdentityProvider, conn_id: str, monkeypatch: pytest.MonkeyPatch) -> OidcTokenHook:
    """A hook whose connection comes from an AIRFLOW_CONN_* variable in JSON form, as in a deployment."""
    conn = {
        "conn_type": "idbt_oidc",
        "host": idp.issuer,
        "login": DEV_CLIENT_ID,
        "password": secret_of(idp),
        "extra": {"audience": "idbt-dev", "groups_claim": "groups"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps(conn))
    return OidcTokenHook(identity_conn_id=conn_id.lower())


def test_the_connection_pages_example(
    dev_idp: DevIdentityProvider, allow_dev: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/connections/oidc.md's example, as the page shows it (tests/unit/test_docs_examples.py finds it here)."""
    TOKEN_CACHE.clear()
    _hook_for(dev_idp, "IDBT_PROD", monkeypatch)  # the idbt_prod connection, from AIRFLOW_CONN_IDBT_PROD
    from airflow_provider_idbt.hooks import OidcTokenHook

    token = OidcTokenHook("idbt_prod").get_token(min_ttl=300)  # seconds or timedelta
    subject, groups, remaining = token.identity.subject, token.identity.groups, token.remaining()
    assert subject == dev_idp.clients[DEV_CLIENT_ID].sub and groups == DEV_GROUPS
    assert remaining > timedelta(seconds=300)


def test_hook_reads_an_env_connection_caches_and_masks(
    dev_idp: DevIdentityProvider, allow_dev: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Airflow's own redaction is the thing under test here, so the test asks it directly.
    from airflow.sdk.log import redact

    caplog.set_level(logging.DEBUG)
    TOKEN_CACHE.clear()
    hook = _hook_for(dev_idp, "IDBT_TEST_OIDC", monkeypatch)
    token = hook.get_token(min_ttl=60)
    assert token.identity.groups == DEV_GROUPS
    assert hook.get_token(min_ttl=timedelta(minutes=5)) is token
    assert len(dev_idp.issued_tokens) == 1
    assert redact(f"Bearer {token.reveal()}") == "Bearer ***"
    assert secret_of(dev_idp) not in str(redact(f"secret={secret_of(dev_idp)}"))
    assert_no_secret([repr(hook), repr(token), caplog.text], dev_idp)


def test_hook_declares_its_form() -> None:
    behaviour = OidcTokenHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["host"] == "Issuer URL"
    assert OidcTokenHook.conn_type == "idbt_oidc"
    assert OidcTokenHook().identity_conn_id == "idbt_oidc_default"


def test_dev_idp_command_serves_until_sigterm(tmp_path: Path, allow_dev: None, clear_identity_caches: None) -> None:
    issuer_file = tmp_path / "issuer"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_idbt.commands.dev_idp",
            "--port",
            "0",
            "--issuer-file",
            str(issuer_file),
            "--client",
            "cli-client:cli-secret-123:etl,finance",
            "--audience",
            "warehouse",
            "--lifetime",
            "120",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not issuer_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        issuer = issuer_file.read_text().strip()
        config = OidcClientConfig.from_connection(
            "cli_oidc", issuer, "cli-client", "cli-secret-123", {"audience": "warehouse"}
        )
        token = OidcClientCredentialsExchanger(config, retry=FAST_RETRY).fetch()
        assert token.identity.groups == ("etl", "finance")
        assert timedelta(seconds=100) < token.remaining() <= timedelta(seconds=120)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert f"issuer {issuer}" in out
    assert "cli-secret-123" not in out
