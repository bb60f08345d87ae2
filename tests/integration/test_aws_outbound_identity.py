"""AWS outbound identity federation as the subject: botocore signs `GetWebIdentityToken` with the worker's AWS
credentials, the STS stand-in (tests/fixtures/aws_outbound_sts.py) signs a JWT with its account's key, and the Google
and Entra stand-ins verify it against that account's JWKS, as they do any issuer's; the hooks end with a Google
access token and an Entra token. Then the ways STS refuses: access denied, federation disabled, throttling."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from airflow_provider_idbt.commands.doctor import EXIT_OK, EXIT_PERMANENT, run_doctor
from airflow_provider_idbt.errors import (
    ConfigurationError,
    CredentialRejected,
    IdentityProviderUnavailable,
)
from airflow_provider_idbt.hooks import identity_hook_for
from airflow_provider_idbt.hooks.base import TOKEN_CACHE
from airflow_provider_idbt.identity.aws.outbound import AwsOutboundTokenSource, clear_cache
from airflow_provider_idbt.identity.azure.claims import clear_tenant_metadata
from airflow_provider_idbt.identity.azure.exchanger import clear_applications
from airflow_provider_idbt.identity.sources import source_from_extra
from airflow_provider_idbt.identity.subject_check import SubjectTokenCheck, checked_subject_token
from airflow_provider_idbt.identity.transport import HttpClient, RetryPolicy
from tests.fixtures.aws_outbound_sts import (
    ACCOUNT,
    EXECUTION_ROLE,
    NAMESPACE,
    OutboundSetup,
    claims_of,
    new_caller,
    outbound,
    outbound_setup,
    throttled,
)
from tests.fixtures.aws_sts import Fault, sts_error
from tests.fixtures.entra_server import (
    APP_ROLES,
    FEDERATED_APP,
    FEDERATION_AUDIENCE,
    SQL,
    TENANT,
    AzureTestbed,
    azure_testbed,
)
from tests.fixtures.google_fixtures import POOL, PROJECT_NUMBER, RUNNER_SA, GoogleSetup
from tests.fixtures.google_servers import Provider
from tests.fixtures.identity_servers import free_port

pytestmark = pytest.mark.integration
__all__ = ["azure_testbed", "outbound", "outbound_setup"]  # fixtures, imported for this module

FAST = RetryPolicy(attempts=3, backoff=0.05)


@pytest.fixture(scope="module")
def aws_provider(google_setup: GoogleSetup, outbound_setup: OutboundSetup) -> Provider:
    """A workload identity pool provider trusting the AWS account's issuer, in the pool the runner SA trusts."""
    return google_setup.cloud.add_provider(PROJECT_NUMBER, POOL, "aws-outbound", outbound_setup.sts.issuer)


@pytest.fixture(scope="module")
def entra_trusts_the_role(azure_testbed: AzureTestbed, outbound_setup: OutboundSetup) -> AzureTestbed:
    """The federated app's credential for the execution role: issuer = the account's issuer, subject = role ARN."""
    federated = {"issuer": outbound_setup.sts.issuer, "subject": EXECUTION_ROLE, "audience": FEDERATION_AUDIENCE}
    azure_testbed.app(FEDERATED_APP).federated.append(federated)
    return azure_testbed


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    TOKEN_CACHE.clear()
    clear_applications()
    clear_tenant_metadata()
    yield
    TOKEN_CACHE.clear()
    clear_applications()


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def google_conn(
    monkeypatch: pytest.MonkeyPatch, google: GoogleSetup, provider: Provider, outbound: OutboundSetup, **extra: Any
) -> str:
    extra = google.extra(audience=provider.resource, groups="analytics") | outbound.extra(**extra)
    return connect(monkeypatch, "idbt_gcp_from_aws", {"conn_type": "idbt_google", "extra": extra})


def azure_conn(monkeypatch: pytest.MonkeyPatch, bed: AzureTestbed, outbound: OutboundSetup, **extra: Any) -> str:
    conn = {
        "conn_type": "idbt_azure",
        "login": FEDERATED_APP,
        "extra": {"tenantId": TENANT, "authority_host": bed.entra.base, "warehouse": "azure_sql"}
        | outbound.extra(**extra),
    }
    return connect(monkeypatch, "idbt_azure_from_aws", conn)


def secrets_of(outbound: OutboundSetup) -> list[str]:
    worker = outbound.worker
    return [*outbound.sts.issued, worker.secret_access_key, *([worker.session_token] if worker.session_token else [])]


def assert_hidden(texts: list[str], secrets: list[str]) -> None:
    assert secrets
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- Google ---------------------------------------------------------------------------------------------------------


def test_google_access_token_from_the_execution_role(
    google: GoogleSetup,
    aws_provider: Provider,
    outbound: OutboundSetup,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = identity_hook_for(google_conn(monkeypatch, google, aws_provider, outbound))
    token = hook.get_token(min_ttl=600)
    # The Google stand-ins minted it for the runner service account, impersonated by the AWS role's principal.
    issued = google.cloud.issued(token.reveal())
    assert issued is not None and issued.principal == f"serviceAccount:{RUNNER_SA}"
    assert token.identity.subject == RUNNER_SA
    assert token.identity.principal == f"principal:{aws_provider.pool}/subject/{EXECUTION_ROLE}"
    assert token.identity.attributes["gcp_subject_issuer"] == outbound.sts.issuer
    assert google.cloud.requests == {"sts": 1, "iam": 1}
    # STS was asked for the provider's default audience, RS256, 300 s, and signed with the account's key.
    assert outbound.sts.calls == [
        {"audiences": ["https:" + aws_provider.resource], "algorithm": "RS256", "duration": 300, "tags": {}}
    ]
    subject = outbound.sts.issued[-1]
    claims = claims_of(subject)
    assert claims["iss"] == outbound.sts.issuer and claims["sub"] == EXECUTION_ROLE
    assert claims[NAMESPACE]["aws_account"] == ACCOUNT
    assert jwt.get_unverified_header(subject)["alg"] == "RS256"
    assert_hidden(
        [caplog.text, repr(token), repr(token.identity), repr(hook.get_config())],
        [token.reveal(), *secrets_of(outbound)],
    )


def test_the_outbound_token_is_reused_until_it_nears_expiry(
    google: GoogleSetup, aws_provider: Provider, outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = identity_hook_for(google_conn(monkeypatch, google, aws_provider, outbound))
    first = hook.get_token(min_ttl=600)
    TOKEN_CACHE.clear()  # a second exchange in the same process, e.g. another task of the worker
    second = hook.get_token(min_ttl=600)
    assert first.reveal() != second.reveal()
    assert google.cloud.requests == {"sts": 2, "iam": 2}
    assert outbound.sts.requests == {"sts": 1}  # one GetWebIdentityToken for both
    config = hook.get_config()
    source = config.subject_source
    assert isinstance(source, AwsOutboundTokenSource)
    fresh = source.get(refresh=True)
    assert outbound.sts.requests == {"sts": 2} and fresh.value.reveal() == outbound.sts.issued[-1]


def test_a_token_for_another_audience_is_refused_by_google(
    google: GoogleSetup, aws_provider: Provider, outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = identity_hook_for(
        google_conn(monkeypatch, google, aws_provider, outbound, aws_audience="https://somewhere.else.example")
    )
    with pytest.raises(CredentialRejected, match="invalid_grant") as raised:
        hook.get_token()
    assert "does not match the expected audience" in str(raised.value)
    # invalid_grant makes the hook ask STS once more (a rotated subject), then give up.
    assert outbound.sts.requests == {"sts": 2}
    assert_hidden([str(raised.value)], secrets_of(outbound))


def test_local_check_verifies_rs256_and_es384_against_the_accounts_jwks(outbound: OutboundSetup) -> None:
    http = HttpClient("c", 5.0, retry=FAST)
    for algorithm in ("RS256", "ES384"):
        extra = outbound.extra(aws_audience="https://api.example.test", aws_signing_algorithm=algorithm)
        source = source_from_extra("c", extra, timeout=5)
        assert source is not None
        check = SubjectTokenCheck(outbound.sts.issuer, ("https://api.example.test",))
        token = checked_subject_token(http, source, check)
        assert jwt.get_unverified_header(token.value.reveal())["alg"] == algorithm
        identity = check.verify(token, http)
        assert identity.subject == EXECUTION_ROLE and identity.issuer == outbound.sts.issuer
        assert token.origin.startswith("AWS STS GetWebIdentityToken at http://127.0.0.1:")


# -- Entra ----------------------------------------------------------------------------------------------------------


def test_entra_token_from_the_execution_role(
    entra_trusts_the_role: AzureTestbed,
    outbound: OutboundSetup,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bed = entra_trusts_the_role
    hook = identity_hook_for(azure_conn(monkeypatch, bed, outbound, aws_request_tags="job=dbt"))
    token = hook.get_token(min_ttl=600)
    assert token.reveal() in bed.entra.issued
    app = bed.app(FEDERATED_APP)
    assert token.identity.subject == app.object_id and token.identity.principal == FEDERATED_APP
    assert token.identity.groups == APP_ROLES and token.identity.audience == (f"{SQL}/",)
    # Entra matched the assertion against the role's federated credential and verified it with the JWKS.
    assertion = bed.entra.assertions[-1]
    assert assertion["iss"] == outbound.sts.issuer and assertion["sub"] == EXECUTION_ROLE
    assert assertion["aud"] == FEDERATION_AUDIENCE and assertion[NAMESPACE]["request_tags"] == {"job": "dbt"}
    assert outbound.sts.calls[-1]["audiences"] == [FEDERATION_AUDIENCE]
    assert_hidden([caplog.text, repr(token), repr(token.identity)], [token.reveal(), *secrets_of(outbound)])


def test_entra_refuses_a_role_it_has_no_federated_credential_for(
    entra_trusts_the_role: AzureTestbed, outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = new_caller(role_arn=f"arn:aws:iam::{ACCOUNT}:role/some-other-role")
    outbound.sts.callers[stranger.access_key_id] = stranger
    for name, value in outbound.env(stranger).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    hook = identity_hook_for(azure_conn(monkeypatch, entra_trusts_the_role, outbound))
    with pytest.raises(CredentialRejected, match="700213"):
        hook.get_token()


# -- STS refusing ---------------------------------------------------------------------------------------------------


def test_access_denied_is_permanent_and_names_the_permission(
    google: GoogleSetup, aws_provider: Provider, outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbound.sts.allowed_audiences = {"https://only.this.example"}  # the role policy's sts:IdentityTokenAudience
    hook = identity_hook_for(google_conn(monkeypatch, google, aws_provider, outbound))
    with pytest.raises(CredentialRejected) as raised:
        hook.get_token()
    message = str(raised.value)
    assert "AccessDenied" in message and "not authorized to perform: sts:GetWebIdentityToken" in message
    assert "allow `sts:GetWebIdentityToken`" in message and "idbt_gcp_from_aws" in message
    assert not raised.value.retryable and outbound.sts.requests == {"sts": 1}
    assert google.cloud.requests == {}  # Google was never asked


def test_federation_disabled_for_the_account(
    entra_trusts_the_role: AzureTestbed, outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbound.sts.enabled = False
    hook = identity_hook_for(azure_conn(monkeypatch, entra_trusts_the_role, outbound))
    with pytest.raises(ConfigurationError, match="OutboundWebIdentityFederationDisabledException") as raised:
        hook.get_token()
    assert "enable-outbound-web-identity-federation" in str(raised.value) and not raised.value.retryable
    assert outbound.sts.requests == {"sts": 1}


def test_throttled_then_recovering(
    google: GoogleSetup,
    aws_provider: Provider,
    outbound: OutboundSetup,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    unavailable = sts_error("ServiceUnavailable", "Service is unable to handle request.", sender=False)
    outbound.sts.faults["sts"] = [
        *throttled(1, retry_after="0"),
        Fault(status=503, body=unavailable, headers={"Content-Type": "text/xml"}),
        Fault(status=503, body="Service Temporarily Unavailable"),  # a proxy's answer, not STS's XML
    ]
    hook = identity_hook_for(google_conn(monkeypatch, google, aws_provider, outbound))
    token = hook.get_token()
    assert google.cloud.issued(token.reveal()) is not None
    assert outbound.sts.requests == {"sts": 4}
    assert "AWS STS GetWebIdentityToken (Throttling); retrying" in caplog.text
    assert "AWS STS GetWebIdentityToken (ServiceUnavailable); retrying" in caplog.text
    assert "AWS STS GetWebIdentityToken (an answer that is not STS's XML); retrying" in caplog.text


def test_throttled_past_the_retries_is_transient(outbound: OutboundSetup) -> None:
    outbound.sts.faults["sts"] = throttled(3)
    source = source_from_extra("c", outbound.extra(aws_audience="x"), timeout=5)
    assert isinstance(source, AwsOutboundTokenSource)
    source.retry = FAST
    with pytest.raises(IdentityProviderUnavailable, match="after 3 attempt") as raised:
        source.get()
    assert raised.value.retryable and outbound.sts.requests == {"sts": 3}


def test_sts_unreachable_is_transient(outbound: OutboundSetup) -> None:
    extra = outbound.extra(aws_audience="x", aws_sts_endpoint_url=f"http://127.0.0.1:{free_port()}")
    source = source_from_extra("c", extra, timeout=2)
    assert isinstance(source, AwsOutboundTokenSource)
    source.retry = FAST
    with pytest.raises(IdentityProviderUnavailable, match="cannot reach STS"):
        source.get()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"AWS_ACCESS_KEY_ID": "ASIAUNKNOWN0000000000"}, "InvalidClientTokenId"),
        ({"AWS_SECRET_ACCESS_KEY": "not-the-right-secret"}, "SignatureDoesNotMatch"),
    ],
)
def test_bad_worker_credentials(
    outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], code: str
) -> None:
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    source = source_from_extra("c", outbound.extra(aws_audience="x"), timeout=5)
    assert source is not None
    with pytest.raises(CredentialRejected, match=code) as raised:
        source.get()
    assert_hidden([str(raised.value)], secrets_of(outbound))


def test_no_credentials_on_the_worker(outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    source = source_from_extra("c", outbound.extra(aws_audience="x"), timeout=5)
    assert source is not None
    with pytest.raises(ConfigurationError, match="found no AWS credentials"):
        source.get()
    assert outbound.sts.requests == {}


# -- idbt doctor ----------------------------------------------------------------------------------------------------


def test_doctor_names_the_source_and_the_aws_principal(
    google: GoogleSetup, aws_provider: Provider, outbound: OutboundSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = google_conn(monkeypatch, google, aws_provider, outbound)
    out, err = io.StringIO(), io.StringIO()
    assert run_doctor(conn_id, out=out, err=err) == EXIT_OK, err.getvalue()
    report = out.getvalue()
    assert f"subject token from AWS STS GetWebIdentityToken for audience https:{aws_provider.resource}" in report
    assert f"principal    principal:{aws_provider.pool}/subject/{EXECUTION_ROLE}" in report
    outbound.sts.enabled = False
    TOKEN_CACHE.clear()
    clear_cache()
    out, err = io.StringIO(), io.StringIO()
    assert run_doctor(conn_id, out=out, err=err) == EXIT_PERMANENT
    assert "enable-outbound-web-identity-federation" in err.getvalue()
    assert_hidden([out.getvalue(), err.getvalue()], secrets_of(outbound))
