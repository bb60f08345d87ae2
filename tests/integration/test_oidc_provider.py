"""The OIDC exchanger against the third-party oidc-provider (npm) over HTTPS: client secret, private_key_jwt and
RFC 8693 token exchange with subject tokens issued by oauth2-mock-server. Cases the dev-IdP and retry tests already
cover for client credentials (IdP down, Retry-After parsing) are not repeated here."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from airflow_provider_idbt.errors import (
    ConnectionFieldError,
    CredentialRejected,
    IdentityProviderUnavailable,
    TokenVerificationError,
)
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.oidc.exchanger import OidcCredentialRejected, OidcTokenExchanger
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.aws_sts import GceMetadataServer, mint_from
from tests.fixtures.identity_servers import run_oauth2_mock_server
from tests.fixtures.oidc_provider import (
    CLIENT_GROUPS,
    JWT_CLIENT,
    SECRET_CLIENT,
    SUBJECT_AUDIENCE,
    WAREHOUSE,
    WORKLOAD,
    WORKLOAD_ROLES,
    OidcProviderServer,
    op_clients,
    rsa_key_pem,
    run_oidc_provider,
    subject_clients,
    write_token,
)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, backoff=0.05)
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def exchanger(
    op: OidcProviderServer,
    *,
    client: str = SECRET_CLIENT,
    password: str | None = None,
    retry: RetryPolicy = FAST,
    **extra: Any,
) -> OidcTokenExchanger:
    if client == JWT_CLIENT:
        extra = {"client_auth": "private_key_jwt", "key_id": op.key_id} | extra
        password = password or op.private_key_pem
    extra = {"audience": WAREHOUSE, "audience_param": "resource"} | extra
    config = OidcClientConfig.from_connection("op_conn", op.issuer, client, password or op.client_secret, extra)
    return OidcTokenExchanger(config, retry=retry)


def token_exchange(op: OidcProviderServer, token_file: Path, **extra: Any) -> OidcTokenExchanger:
    return exchanger(op, grant_type=EXCHANGE, subject_token_file=str(token_file), **extra)


def assert_hidden(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- success ----------------------------------------------------------------------------------------------------


def test_client_secret_gets_a_jwt_with_custom_groups_claim(
    oidc_provider: OidcProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = exchanger(oidc_provider, scope="warehouse.read").fetch()
    assert token.identity.subject == SECRET_CLIENT
    assert token.identity.groups == CLIENT_GROUPS
    assert token.identity.audience == (WAREHOUSE,)
    assert token.scope == ("warehouse.read",)
    assert_hidden([repr(token), caplog.text], [token.reveal(), oidc_provider.client_secret])


def test_private_key_jwt_client_assertion(oidc_provider: OidcProviderServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ex = exchanger(oidc_provider, client=JWT_CLIENT)
    token = ex.fetch()
    assert token.identity.subject == token.identity.principal == JWT_CLIENT
    # A second fetch needs a new assertion: the IdP refuses a replayed jti.
    assert ex.fetch().fingerprint != token.fingerprint
    key_body = oidc_provider.private_key_pem.splitlines()[1]
    assert_hidden([repr(ex), repr(ex.config), caplog.text], [token.reveal(), key_body])


def test_token_exchange_names_the_workload_and_the_acting_client(
    oidc_provider: OidcProviderServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    subject = oidc_provider.subject_token()
    token = token_exchange(oidc_provider, write_token(tmp_path / "token", subject), scope="warehouse.write").fetch()
    assert token.identity.subject == WORKLOAD
    assert token.identity.principal == SECRET_CLIENT
    assert token.identity.groups == WORKLOAD_ROLES  # the subject's roles, passed on by the IdP
    claims = jwt.decode(token.reveal(), options={"verify_signature": False})
    assert claims["act"] == {"sub": SECRET_CLIENT}
    assert_hidden([repr(token), caplog.text], [token.reveal(), subject, oidc_provider.client_secret])


def test_token_exchange_with_private_key_jwt_and_declared_groups(
    oidc_provider: OidcProviderServer, tmp_path: Path
) -> None:
    subject = oidc_provider.subject_token(client_id="other-workload")
    ex = token_exchange(oidc_provider, write_token(tmp_path / "token", subject), client=JWT_CLIENT, groups="a, b")
    token = ex.fetch()
    assert token.identity.subject == "other-workload"
    assert token.identity.groups == ("other.team",)  # claims win over declared groups


def test_gce_metadata_source_is_reread_after_the_subject_issuer_rotates_its_key(
    test_ca: Any, free_port_pair: tuple[int, int]
) -> None:
    # Its own servers: the subject issuer is restarted on the same port, with a new signing key.
    secret = "gce-subj-secret-1234567"
    client_secret = "gce-op-secret-7654321"
    _, jwk = rsa_key_pem()
    sa = "composer-env@project.iam.gserviceaccount.com"
    clients = subject_clients(secret) | {sa: {"secret": secret, "roles": ["composer"]}}
    port = free_port_pair[0]
    with contextlib.ExitStack() as stack:
        subject_server = stack.enter_context(contextlib.ExitStack())
        subject_issuer = subject_server.enter_context(run_oauth2_mock_server(clients, port=port))
        metadata = GceMetadataServer(mint_from(subject_issuer, sa, secret))
        stack.callback(metadata.close)
        issuer = stack.enter_context(run_oidc_provider(test_ca, subject_issuer, op_clients(client_secret, jwk, "k1")))
        config = OidcClientConfig.from_connection(
            "gce_conn",
            issuer,
            SECRET_CLIENT,
            client_secret,
            {
                "audience": WAREHOUSE,
                "audience_param": "resource",
                "grant_type": EXCHANGE,
                "subject_token_source": "gce_metadata",
                "subject_token_audience": SUBJECT_AUDIENCE,
                "gce_metadata_url": metadata.base_url,
            },
        )
        ex = OidcTokenExchanger(config, retry=FAST)
        assert ex.fetch().identity.subject == sa
        assert ex.fetch().identity.subject == sa
        assert metadata.requests == 1  # the ID token is reused while it is valid
        subject_server.close()  # the subject issuer restarts on the same port with a new signing key
        stack.enter_context(run_oauth2_mock_server(clients, port=port))
        # The cached ID token is signed by a key the issuer no longer publishes: the IdP says invalid_grant,
        # the source is read again once, and the exchange succeeds.
        assert ex.fetch().identity.subject == sa
        assert metadata.requests == 2


# -- subject token problems ----------------------------------------------------------------------------------------


def test_subject_token_for_another_audience_is_rejected(oidc_provider: OidcProviderServer, tmp_path: Path) -> None:
    subject = oidc_provider.subject_token(audience="someone-else")
    with pytest.raises(OidcCredentialRejected, match="invalid_grant") as info:
        token_exchange(oidc_provider, write_token(tmp_path / "token", subject)).fetch()
    assert not info.value.retryable
    assert str(tmp_path / "token") in str(info.value) and subject not in str(info.value)


def test_expired_subject_token_is_reread_then_refused_before_any_request(
    oidc_provider: OidcProviderServer, tmp_path: Path
) -> None:
    subject = oidc_provider.subject_token(client_id="expired-workload")
    with pytest.raises(CredentialRejected, match=r"expired at .* and was not renewed") as info:
        token_exchange(oidc_provider, write_token(tmp_path / "token", subject)).fetch()
    assert subject not in str(info.value)


def test_subject_token_with_a_bad_signature_is_rejected(oidc_provider: OidcProviderServer, tmp_path: Path) -> None:
    header, payload, signature = oidc_provider.subject_token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = f"{header}.{forged}.{signature}"
    with pytest.raises(OidcCredentialRejected, match=r"invalid_grant.*ERR_JWS_SIGNATURE_VERIFICATION_FAILED") as info:
        token_exchange(oidc_provider, write_token(tmp_path / "token", token)).fetch()
    assert token not in str(info.value)


def test_unsigned_subject_token_is_rejected(oidc_provider: OidcProviderServer, tmp_path: Path) -> None:
    claims = jwt.decode(oidc_provider.subject_token(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(OidcCredentialRejected, match="invalid_grant"):
        token_exchange(oidc_provider, write_token(tmp_path / "token", unsigned)).fetch()


def test_local_subject_check_names_the_wrong_claim(oidc_provider: OidcProviderServer, tmp_path: Path) -> None:
    subject = oidc_provider.subject_token(audience="someone-else")
    ex = token_exchange(
        oidc_provider,
        write_token(tmp_path / "token", subject),
        subject_issuer=oidc_provider.subject_issuer,
        subject_audience=SUBJECT_AUDIENCE,
    )
    with pytest.raises(TokenVerificationError, match=f"not for audience {SUBJECT_AUDIENCE}"):
        ex.fetch()


def test_rotated_token_file_is_picked_up(oidc_provider: OidcProviderServer, tmp_path: Path) -> None:
    path = write_token(tmp_path / "token", oidc_provider.subject_token())
    ex = token_exchange(oidc_provider, path)
    assert ex.fetch().identity.subject == WORKLOAD
    write_token(path, oidc_provider.subject_token(client_id="other-workload"))
    assert ex.fetch().identity.subject == "other-workload"


def test_missing_token_file_names_the_field(oidc_provider: OidcProviderServer, tmp_path: Path) -> None:
    with pytest.raises(ConnectionFieldError, match="subject_token_file"):
        token_exchange(oidc_provider, tmp_path / "absent").fetch()


# -- identity provider problems ------------------------------------------------------------------------------------


def test_rotated_signing_key_of_the_idp(test_ca: Any, free_port_pair: tuple[int, int]) -> None:
    secret, (_, jwk) = "rot-op-secret-0987654", rsa_key_pem()
    with run_oauth2_mock_server(subject_clients("s-1234567890abcdef")) as subject_issuer:
        clients = op_clients(secret, jwk, "k1")
        with run_oidc_provider(test_ca, subject_issuer, clients, port=free_port_pair[1]) as issuer:
            config = OidcClientConfig.from_connection(
                "rot", issuer, SECRET_CLIENT, secret, {"audience": WAREHOUSE, "audience_param": "resource"}
            )
            first = OidcTokenExchanger(config, retry=FAST).fetch()
        with run_oidc_provider(test_ca, subject_issuer, clients, port=free_port_pair[1]):
            second = OidcTokenExchanger(config, retry=FAST).fetch()
    assert jwt.get_unverified_header(first.reveal())["kid"] != jwt.get_unverified_header(second.reveal())["kid"]


def test_idp_slower_than_the_timeout(oidc_provider: OidcProviderServer) -> None:
    ex = exchanger(oidc_provider, timeout=0.5, retry=RetryPolicy(attempts=2, backoff=0.05))
    ex.discover()
    oidc_provider.faults(count=2, delay_ms=1500)
    started = time.monotonic()
    with pytest.raises(IdentityProviderUnavailable, match=r"after 2 attempt\(s\) \(ReadTimeout") as info:
        ex.fetch()
    assert info.value.retryable and time.monotonic() - started < 3


def test_server_errors_then_recovery(oidc_provider: OidcProviderServer) -> None:
    oidc_provider.faults(count=2, status=503)
    assert exchanger(oidc_provider).fetch().identity.subject == SECRET_CLIENT


def test_too_many_requests_waits_for_retry_after(oidc_provider: OidcProviderServer) -> None:
    oidc_provider.faults(count=1, status=429, retry_after="1")
    started = time.monotonic()
    assert exchanger(oidc_provider, retry=RetryPolicy(attempts=3, backoff=0.01)).fetch()
    assert time.monotonic() - started >= 1.0  # the server's Retry-After, not our 10 ms backoff


def test_invalid_client_secret(oidc_provider: OidcProviderServer) -> None:
    with pytest.raises(OidcCredentialRejected) as info:
        exchanger(oidc_provider, password="not-the-secret-at-all").fetch()
    assert (info.value.error, info.value.status) == ("invalid_client", 401)
    assert not info.value.retryable and "not-the-secret-at-all" not in str(info.value)


def test_invalid_client_assertion_signed_with_another_key(oidc_provider: OidcProviderServer) -> None:
    other_pem, _ = rsa_key_pem()
    with pytest.raises(OidcCredentialRejected, match="invalid_client") as info:
        exchanger(oidc_provider, client=JWT_CLIENT, password=other_pem).fetch()
    assert other_pem.splitlines()[1] not in str(info.value)


def test_unknown_resource_is_invalid_target(oidc_provider: OidcProviderServer) -> None:
    with pytest.raises(OidcCredentialRejected, match=r"invalid_target.*extra `audience`"):
        exchanger(oidc_provider, audience="https://not-registered.example.test").fetch()


@pytest.fixture
def free_port_pair() -> tuple[int, int]:
    from tests.fixtures.identity_servers import free_port

    return free_port(), free_port()
