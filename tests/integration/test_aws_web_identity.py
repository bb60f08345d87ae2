"""AssumeRoleWithWebIdentity through botocore against moto_server (PyPI) on 127.0.0.1, with web identity tokens
from oauth2-mock-server. moto does not validate web identity tokens, so the token cases (audience, signature,
alg none, expiry, key rotation) exercise the connection's local subject check (`subject_issuer`); STS's own
refusals and overloads come from a fault proxy in front of moto, in STS's wire format."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
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
from airflow_provider_idbt.identity.aws.config import STS_AUDIENCE, AwsWebIdentityConfig
from airflow_provider_idbt.identity.aws.exchanger import AwsFederatedToken, AwsWebIdentityExchanger
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.aws_sts import Fault, FaultProxy, sts_error
from tests.fixtures.identity_servers import SubjectIssuer, free_port
from tests.fixtures.oidc_provider import write_token

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/dbt-prod"
WORKLOAD = "system:serviceaccount:analytics:dbt-runner"
FAST = RetryPolicy(attempts=3, backoff=0.05)
SECRET = "aws-subj-secret-5a7c9e1b3d"
CLIENTS = {
    WORKLOAD: {"secret": SECRET},
    "expired": {"secret": SECRET, "lifetime": -120},
    "rotated": {"secret": SECRET},
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[SubjectIssuer]:
    server = SubjectIssuer(CLIENTS, audience=STS_AUDIENCE, workload=WORKLOAD)
    yield server
    server.stop()


@pytest.fixture
def token_file(tmp_path: Path, issuer: SubjectIssuer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_token(tmp_path / "web-identity-token", issuer.token())
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(path))
    return path


def exchanger(endpoint: str, *, retry: RetryPolicy = FAST, **extra: Any) -> AwsWebIdentityExchanger:
    extra = {"role_arn": ROLE, "region_name": "eu-west-1", "sts_endpoint_url": endpoint} | extra
    return AwsWebIdentityExchanger(AwsWebIdentityConfig.from_connection("aws_conn", None, None, extra), retry=retry)


def checked(endpoint: str, issuer: SubjectIssuer, **extra: Any) -> AwsWebIdentityExchanger:
    return exchanger(endpoint, subject_issuer=issuer.url, **extra)


# -- success ----------------------------------------------------------------------------------------------------


def test_assume_role_gives_credentials_and_the_caller_identity(
    moto_sts: str, token_file: Path, issuer: SubjectIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = checked(moto_sts, issuer, groups="analytics, finance").fetch()
    assert isinstance(token, AwsFederatedToken)
    identity = token.identity
    assert identity.subject == "arn:aws:sts::123456789012:assumed-role/dbt-prod/idbt-aws_conn"
    assert identity.principal == ROLE
    assert identity.groups == ("analytics", "finance")  # declared: AWS credentials carry none
    assert identity.attributes["aws_account"] == "123456789012"
    assert identity.issuer == moto_sts
    creds = token.credentials
    assert creds.access_key_id.startswith("ASIA")
    assert token.reveal() == creds.session_token.reveal()
    assert 3500 < token.remaining().total_seconds() <= 3600
    secrets = [*creds.secrets(), token_file.read_text().strip()]
    for text in (repr(token), repr(creds), repr(identity), caplog.text):
        for secret in secrets:
            assert secret not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(creds)


def test_rotated_token_file_is_picked_up(moto_sts: str, token_file: Path, issuer: SubjectIssuer) -> None:
    ex = checked(moto_sts, issuer)
    first = ex.fetch()
    write_token(token_file, issuer.token())
    second = ex.fetch()
    assert first.fingerprint != second.fingerprint


# -- subject token problems (local check) ---------------------------------------------------------------------


def test_token_for_another_audience(moto_sts: str, token_file: Path, issuer: SubjectIssuer) -> None:
    write_token(token_file, issuer.token(audience="api://something-else"))
    with pytest.raises(TokenVerificationError, match=f"{token_file}.*not for audience {STS_AUDIENCE}"):
        checked(moto_sts, issuer).fetch()


def test_expired_token_is_refused_before_calling_sts(
    sts_proxy: FaultProxy, token_file: Path, issuer: SubjectIssuer
) -> None:
    write_token(token_file, issuer.token(client="expired"))
    with pytest.raises(CredentialRejected, match="expired at"):
        checked(sts_proxy.url, issuer).fetch()
    assert sts_proxy.requests == 0


def test_bad_signature(moto_sts: str, token_file: Path, issuer: SubjectIssuer) -> None:
    header, _, signature = issuer.token().split(".")
    other_payload = issuer.token(client="rotated").split(".")[1]
    write_token(token_file, f"{header}.{other_payload}.{signature}")
    with pytest.raises(TokenVerificationError, match="signature does not verify"):
        checked(moto_sts, issuer).fetch()


def test_alg_none(moto_sts: str, token_file: Path, issuer: SubjectIssuer) -> None:
    claims = jwt.decode(issuer.token(), options={"verify_signature": False})
    write_token(token_file, jwt.encode(claims, None, algorithm="none"))
    with pytest.raises(TokenVerificationError, match="algorithm 'none'"):
        checked(moto_sts, issuer).fetch()


def test_rotated_signing_key_of_the_token_issuer(moto_sts: str, token_file: Path, issuer: SubjectIssuer) -> None:
    ex = checked(moto_sts, issuer)
    ex.fetch()
    issuer.stop()
    issuer.start()  # same port, new key: the JWKS is fetched again for the unknown kid
    write_token(token_file, issuer.token())
    assert ex.fetch().identity.principal == ROLE


# -- STS problems -----------------------------------------------------------------------------------------------


def test_sts_down(token_file: Path) -> None:
    with pytest.raises(IdentityProviderUnavailable, match=r"AssumeRoleWithWebIdentity.*after 3 attempt") as info:
        exchanger(f"http://127.0.0.1:{free_port()}").fetch()
    assert info.value.retryable


def test_sts_slower_than_the_timeout(sts_proxy: FaultProxy, token_file: Path) -> None:
    sts_proxy.faults += [Fault(delay=1.5), Fault(delay=1.5)]
    started = time.monotonic()
    with pytest.raises(IdentityProviderUnavailable, match="ReadTimeout"):
        exchanger(sts_proxy.url, timeout=0.5, retry=RetryPolicy(attempts=2, backoff=0.05)).fetch()
    assert time.monotonic() - started < 3


def test_server_errors_then_recovery(sts_proxy: FaultProxy, token_file: Path) -> None:
    error = sts_error("ServiceUnavailable", "Service is unavailable", sender=False)
    sts_proxy.faults += [Fault(503, error), Fault(500, sts_error("InternalFailure", "oops", sender=False))]
    assert exchanger(sts_proxy.url).fetch().identity.principal == ROLE
    assert sts_proxy.requests == 4  # two failures, AssumeRoleWithWebIdentity, GetCallerIdentity


def test_an_answer_that_is_not_stss_xml_is_retried(sts_proxy: FaultProxy, token_file: Path) -> None:
    # A load balancer's page in front of STS, then the same outage past the retries: transient both times.
    sts_proxy.faults.append(Fault(502, "<html><body>Bad Gateway</body></html>", {"Content-Type": "text/html"}))
    assert exchanger(sts_proxy.url).fetch().identity.principal == ROLE
    sts_proxy.faults += [Fault(503, "Service Temporarily Unavailable")] * 3
    with pytest.raises(IdentityProviderUnavailable, match=r"after 3 attempt.*not STS's XML") as info:
        exchanger(sts_proxy.url).fetch()
    assert info.value.retryable and token_file.read_text().strip() not in str(info.value)


def test_throttling_waits_for_retry_after(sts_proxy: FaultProxy, token_file: Path) -> None:
    sts_proxy.faults.append(Fault(400, sts_error("Throttling", "Rate exceeded"), {"Retry-After": "1"}))
    started = time.monotonic()
    assert exchanger(sts_proxy.url, retry=RetryPolicy(attempts=3, backoff=0.01)).fetch()
    assert time.monotonic() - started >= 1.0


def test_access_denied_is_permanent_with_stss_message(sts_proxy: FaultProxy, token_file: Path) -> None:
    message = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    sts_proxy.faults.append(Fault(403, sts_error("AccessDenied", message)))
    with pytest.raises(CredentialRejected, match=f"AccessDenied: {message}.*trust policy") as info:
        exchanger(sts_proxy.url).fetch()
    assert not info.value.retryable
    assert token_file.read_text().strip() not in str(info.value)


def test_invalid_identity_token_is_reread_once(sts_proxy: FaultProxy, token_file: Path, issuer: SubjectIssuer) -> None:
    sts_proxy.faults.append(Fault(400, sts_error("InvalidIdentityToken", "Couldn't retrieve verification key")))
    # A rotation lands between the read and STS's answer: the token read again is tried once more.
    ex = exchanger(sts_proxy.url)
    source = ex.config.subject_source
    read = source.get

    def get(*, refresh: bool = False) -> Any:
        if refresh:
            write_token(token_file, issuer.token(client="rotated"))
        return read(refresh=refresh)

    object.__setattr__(source, "get", get)
    assert ex.fetch().identity.principal == ROLE
    assert sts_proxy.requests == 3  # refused, AssumeRoleWithWebIdentity again, GetCallerIdentity


def test_connection_refuses_access_keys() -> None:
    with pytest.raises(ConnectionFieldError, match=r"password.*never uses"):
        AwsWebIdentityConfig.from_connection("k", None, "AKIA...", {"role_arn": ROLE, "region_name": "eu-west-1"})


def test_hook_masks_credentials(moto_sts: str, token_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.log import redact

    from airflow_provider_idbt.hooks import identity_hook_for
    from airflow_provider_idbt.hooks.aws import AwsWebIdentityHook

    conn = {
        "conn_type": "idbt_aws",
        "extra": {"role_arn": ROLE, "region_name": "eu-west-1", "sts_endpoint_url": moto_sts},
    }
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_TEST_AWS", json.dumps(conn))
    hook = identity_hook_for("idbt_test_aws")
    assert isinstance(hook, AwsWebIdentityHook)
    token = hook.get_token(min_ttl=600)
    assert isinstance(token, AwsFederatedToken)
    assert hook.get_token(min_ttl=600) is token
    for secret in (*token.credentials.secrets(), token_file.read_text().strip()):
        assert secret not in str(redact(f"value={secret}"))
