"""The OIDC exchanger and OidcTokenHook against the third-party oauth2-mock-server (npm) on 127.0.0.1."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_idbt.errors import IdentityProviderUnavailable, TokenVerificationError
from airflow_provider_idbt.hooks.base import TOKEN_CACHE
from airflow_provider_idbt.hooks.oidc import OidcTokenHook
from airflow_provider_idbt.identity import discovery
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.oidc.exchanger import OidcClientCredentialsExchanger, OidcCredentialRejected
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.identity_servers import MOCK_CLIENT_ID, MOCK_CLIENT_SECRET, MOCK_ROLES, run_oauth2_mock_server

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(attempts=2, backoff=0.05)


def exchanger(
    issuer: str, *, client_id: str = MOCK_CLIENT_ID, password: str = MOCK_CLIENT_SECRET, **extra: object
) -> OidcClientCredentialsExchanger:
    config = OidcClientConfig.from_connection("mock_oidc", issuer, client_id, password, extra)
    return OidcClientCredentialsExchanger(config, retry=FAST_RETRY)


def test_fetch_with_roles_audience_and_scope(oauth2_mock_server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = exchanger(oauth2_mock_server, audience="api://warehouse", scope="read write").fetch()
    identity = token.identity
    assert identity.issuer == oauth2_mock_server
    assert identity.subject == identity.principal == MOCK_CLIENT_ID
    assert identity.groups == MOCK_ROLES  # no `groups` claim: the `roles` claim is used
    assert identity.audience == ("api://warehouse",)
    assert "idbt_dev" not in identity.attributes  # a third-party IdP needs no opt-in
    assert token.scope == ("read", "write")
    for text in (repr(token), str(token), repr(identity), caplog.text):
        assert token.reveal() not in text and MOCK_CLIENT_SECRET not in text


def test_resource_parameter_for_rfc8707_servers(oauth2_mock_server: str) -> None:
    token = exchanger(oauth2_mock_server, audience="urn:warehouse", audience_param="resource").fetch()
    assert token.identity.audience == ("urn:warehouse",)


def test_wrong_secret_is_rejected_with_the_idps_description(oauth2_mock_server: str) -> None:
    with pytest.raises(OidcCredentialRejected) as info:
        exchanger(oauth2_mock_server, password="not-the-secret").fetch()
    assert info.value.error == "invalid_client"
    assert info.value.error_description == "Client authentication failed (unknown client or wrong secret)."
    assert "unknown client or wrong secret" in str(info.value)
    assert "not-the-secret" not in str(info.value)


def test_client_secret_post_when_discovery_lists_only_post() -> None:
    clients = {"post-client": {"secret": "post-only-secret-1234"}}
    discovery.clear_discovery_cache()
    with run_oauth2_mock_server(clients, auth_methods=["client_secret_post"]) as issuer:
        # The server refuses Basic here, so success proves the exchanger switched to client_secret_post.
        token = exchanger(issuer, client_id="post-client", password="post-only-secret-1234").fetch()
        assert token.identity.subject == "post-client"


def test_server_errors_are_retried_then_unavailable() -> None:
    clients = {"flaky": {"secret": "flaky-secret-5678", "status": 503}}
    discovery.clear_discovery_cache()
    with run_oauth2_mock_server(clients) as issuer:
        with pytest.raises(IdentityProviderUnavailable, match=r"after 2 attempt\(s\) \(HTTP 503\)"):
            exchanger(issuer, client_id="flaky", password="flaky-secret-5678").fetch()


def test_token_for_another_audience_fails_verification() -> None:
    # This client's tokens always carry the IdP's own audience, whatever was asked for, as some IdPs do.
    clients = {"fixed-aud": {"secret": "fixed-aud-secret-42", "aud": "api://someone-else"}}
    discovery.clear_discovery_cache()
    with run_oauth2_mock_server(clients) as issuer:
        with pytest.raises(TokenVerificationError, match="not for audience api://warehouse") as info:
            exchanger(issuer, client_id="fixed-aud", password="fixed-aud-secret-42", audience="api://warehouse").fetch()
        assert "mock_oidc" in str(info.value)


def test_hook_against_the_mock_server(oauth2_mock_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "idbt_oidc",
        "host": oauth2_mock_server,
        "login": MOCK_CLIENT_ID,
        "password": MOCK_CLIENT_SECRET,
        "extra": {"audience": "api://warehouse", "groups_claim": "groups"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_MOCK_OIDC", json.dumps(conn))
    TOKEN_CACHE.clear()
    token = OidcTokenHook("idbt_mock_oidc").get_token(min_ttl=300)
    assert token.identity.groups == MOCK_ROLES
