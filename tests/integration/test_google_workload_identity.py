"""Google workload identity federation through google-auth against the Google stand-ins (tests/fixtures/
google_servers.py): STS verifies each subject token against the issuing server's JWKS (oauth2-mock-server, npm),
IAM Credentials checks bindings; a universe other than googleapis.com throughout. The case list of the first
identity issue, plus the Cloud Composer paths and ID tokens."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from airflow_provider_idbt.errors import (
    ConfigurationError,
    CredentialRejected,
    IdentityProviderUnavailable,
    TokenVerificationError,
)
from airflow_provider_idbt.identity.google.config import GoogleFederationConfig
from airflow_provider_idbt.identity.google.exchanger import GoogleFederationExchanger, GoogleRefused
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.aws_sts import Fault
from tests.fixtures.google_fixtures import COMPOSER_SA, RUNNER_SA, UNIVERSE, WORKLOAD, GoogleSetup
from tests.fixtures.google_servers import oauth_error, rpc_error
from tests.fixtures.identity_servers import free_port
from tests.fixtures.oidc_provider import write_token

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, backoff=0.05)


def exchanger(google: GoogleSetup, *, retry: RetryPolicy = FAST, **extra: Any) -> GoogleFederationExchanger:
    config = GoogleFederationConfig.from_connection("gcp_conn", None, None, google.extra(**extra))
    return GoogleFederationExchanger(config, retry=retry)


@pytest.fixture
def token_file(tmp_path: Path, google: GoogleSetup) -> Path:
    return write_token(tmp_path / "token", google.subject_token())


def from_file(google: GoogleSetup, path: Path, **extra: Any) -> GoogleFederationExchanger:
    return exchanger(google, subject_token_source="file", subject_token_file=str(path), **extra)


def assert_hidden(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- success ----------------------------------------------------------------------------------------------------


def test_federation_and_impersonation(google: GoogleSetup, token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ex = from_file(google, token_file, groups="analytics, finance", scopes="https://www.googleapis.com/auth/bigquery")
    token = ex.fetch()
    identity = token.identity
    assert identity.subject == RUNNER_SA
    assert identity.principal == f"principal:{google.workload.pool}/subject/{WORKLOAD}"
    assert identity.groups == ("analytics", "finance")
    assert identity.audience == (google.workload.resource,)
    assert identity.issuer == google.cloud.iam.url
    assert identity.attributes["gcp_subject_issuer"] == google.issuer.url
    assert identity.attributes["gcp_universe"] == UNIVERSE
    issued = google.cloud.issued(token.reveal())
    assert issued is not None and issued.principal == f"serviceAccount:{RUNNER_SA}"
    assert issued.scopes == ("https://www.googleapis.com/auth/bigquery",)
    assert token.expires_at == issued.expires_at  # expireTime parsed to the second
    assert google.cloud.requests == {"sts": 1, "iam": 1}
    subject = token_file.read_text().strip()
    assert_hidden([repr(token), repr(ex), repr(ex.config), repr(identity), caplog.text], [token.reveal(), subject])


def test_federation_without_impersonation(google: GoogleSetup, token_file: Path) -> None:
    token = from_file(google, token_file, target_principal="").fetch()
    principal = f"principal:{google.workload.pool}/subject/{WORKLOAD}"
    assert token.identity.subject == token.identity.principal == principal
    assert token.identity.issuer == google.cloud.sts.url
    assert google.cloud.requests == {"sts": 1}


def test_rotated_token_file_is_picked_up(google: GoogleSetup, token_file: Path) -> None:
    ex = from_file(google, token_file)
    first = ex.fetch()
    write_token(token_file, google.subject_token("system:serviceaccount:airflow:other"))
    second = ex.fetch()
    assert first.fingerprint != second.fingerprint
    assert str(second.identity.principal).endswith("/subject/system:serviceaccount:airflow:other")


def test_composer_metadata_id_token_as_subject(google: GoogleSetup) -> None:
    ex = exchanger(
        google,
        audience=google.composer.resource,
        subject_token_source="gce_metadata",
        subject_token_audience=google.composer.audiences[0],
    )
    token = ex.fetch()
    unique_id = google.cloud.unique_ids[COMPOSER_SA]
    assert token.identity.subject == RUNNER_SA
    assert token.identity.principal == f"principal:{google.composer.pool}/subject/{unique_id}"
    assert token.identity.attributes["gcp_subject_issuer"] == google.cloud.accounts.url
    ex.fetch()
    assert google.cloud.requests["metadata"] == 1  # the ID token is reused while valid


def test_composer_environment_credentials_impersonate(google: GoogleSetup) -> None:
    token = exchanger(google, mode="environment", audience="").fetch()
    assert token.identity.subject == RUNNER_SA
    assert token.identity.principal == COMPOSER_SA
    assert google.cloud.requests == {"metadata": 2, "iam": 1}  # service-account info, token, generateAccessToken
    assert google.cloud.issued(token.reveal()).principal == f"serviceAccount:{RUNNER_SA}"  # type: ignore[union-attr]


def test_id_token_for_a_target_is_verified_against_googles_keys(google: GoogleSetup, token_file: Path) -> None:
    target = "https://reports-abc123-ew.a.run.app"
    token = from_file(google, token_file).fetch_id_token(target)
    assert google.cloud.requests == {"sts": 1, "iam": 1}
    jwks = jwt.PyJWKClient(f"{google.cloud.accounts.url}/oauth2/v3/certs")
    claims = jwt.decode(
        token.reveal(), jwks.get_signing_key_from_jwt(token.reveal()).key, algorithms=["RS256"], audience=target
    )
    assert claims["email"] == RUNNER_SA and claims["iss"] == google.cloud.accounts.url
    assert token.identity.subject == RUNNER_SA and token.identity.audience == (target,)


def test_delegation_chain(google: GoogleSetup, token_file: Path) -> None:
    middle = "dbt-hop@analytics-prod.iam.gserviceaccount.com"
    final = "dbt-final@analytics-prod.iam.gserviceaccount.com"
    google.cloud.grant(middle, "roles/iam.workloadIdentityUser", f"principalSet:{google.workload.pool}/*")
    google.cloud.grant(final, "roles/iam.serviceAccountTokenCreator", f"serviceAccount:{middle}")
    token = from_file(google, token_file, target_principal=final, delegates=middle).fetch()
    assert google.cloud.issued(token.reveal()).principal == f"serviceAccount:{final}"  # type: ignore[union-attr]
    with pytest.raises(GoogleRefused, match="PERMISSION_DENIED"):
        from_file(google, token_file, target_principal=final).fetch()  # no direct binding on the final account


# -- subject token problems: STS verifies against the issuer's JWKS ------------------------------------------------


def test_subject_token_for_another_audience(google: GoogleSetup, tmp_path: Path) -> None:
    path = write_token(tmp_path / "token", google.subject_token(audience="https://someone-else.example"))
    with pytest.raises(GoogleRefused, match=r"invalid_grant: The audience in ID Token .* does not match") as info:
        from_file(google, path).fetch()
    assert not info.value.retryable
    assert str(path) in str(info.value)


def test_local_check_names_the_audience_before_calling_sts(google: GoogleSetup, tmp_path: Path) -> None:
    path = write_token(tmp_path / "token", google.subject_token(audience="https://someone-else.example"))
    with pytest.raises(TokenVerificationError, match="not for audience https://iam"):
        from_file(google, path, subject_issuer=google.issuer.url).fetch()
    assert "sts" not in google.cloud.requests


def test_expired_subject_token_is_refused_before_calling_sts(google: GoogleSetup, tmp_path: Path) -> None:
    path = write_token(tmp_path / "token", google.subject_token("expired"))
    with pytest.raises(CredentialRejected, match="expired at"):
        from_file(google, path).fetch()
    assert "sts" not in google.cloud.requests


def test_bad_signature(google: GoogleSetup, tmp_path: Path) -> None:
    header, _, signature = google.subject_token().split(".")
    payload = google.subject_token("rotated").split(".")[1]
    forged = f"{header}.{payload}.{signature}"
    path = write_token(tmp_path / "token", forged)
    with pytest.raises(GoogleRefused, match="invalid_grant: Invalid ID Token signature") as info:
        from_file(google, path).fetch()
    assert forged not in str(info.value)


def test_alg_none(google: GoogleSetup, tmp_path: Path) -> None:
    claims = jwt.decode(google.subject_token(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    path = write_token(tmp_path / "token", unsigned)
    with pytest.raises(GoogleRefused, match="unsupported signing algorithm none"):
        from_file(google, path).fetch()


def test_rotated_signing_key_of_the_subject_issuer(google: GoogleSetup, token_file: Path) -> None:
    ex = from_file(google, token_file)
    ex.fetch()
    google.issuer.stop()
    google.issuer.start()  # same port, new key: STS fetches the JWKS again for the unknown kid
    write_token(token_file, google.subject_token())
    assert ex.fetch().identity.subject == RUNNER_SA


def test_invalid_grant_rereads_the_subject_token_once(google: GoogleSetup, token_file: Path) -> None:
    google.cloud.faults["sts"] = [Fault(400, json.dumps({"error": "invalid_grant", "error_description": "stale"}))]
    ex = from_file(google, token_file)
    source = ex.config.subject_source
    assert source is not None
    read = source.get

    def get(*, refresh: bool = False) -> Any:
        if refresh:  # a rotation lands between the read and STS's answer
            write_token(token_file, google.subject_token("rotated"))
        return read(refresh=refresh)

    object.__setattr__(source, "get", get)
    assert str(ex.fetch().identity.principal).endswith("/subject/rotated")
    assert google.cloud.requests["sts"] == 2


# -- STS / IAM Credentials problems ---------------------------------------------------------------------------------


def test_sts_down(google: GoogleSetup, token_file: Path) -> None:
    with pytest.raises(IdentityProviderUnavailable, match=r"Google STS.*after 3 attempt") as info:
        from_file(google, token_file, sts_endpoint=f"http://127.0.0.1:{free_port()}").fetch()
    assert info.value.retryable


def test_sts_slower_than_the_timeout(google: GoogleSetup, token_file: Path) -> None:
    google.cloud.faults["sts"] = [Fault(delay=1.5), Fault(delay=1.5)]
    started = time.monotonic()
    with pytest.raises(IdentityProviderUnavailable, match="ReadTimeout"):
        from_file(google, token_file, timeout=0.5, retry=RetryPolicy(attempts=2, backoff=0.05)).fetch()
    assert time.monotonic() - started < 3


def test_server_errors_then_recovery(google: GoogleSetup, token_file: Path) -> None:
    google.cloud.faults["sts"] = [Fault(503, json.dumps({"error": "temporarily_unavailable"}))]
    google.cloud.faults["iam"] = [Fault(500, rpc_error(500, "INTERNAL", "Internal error")[2].decode())]
    assert from_file(google, token_file).fetch().identity.subject == RUNNER_SA
    assert google.cloud.requests == {"sts": 2, "iam": 2}


def test_429_waits_for_retry_after(google: GoogleSetup, token_file: Path) -> None:
    body = rpc_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")[2].decode()
    google.cloud.faults["iam"] = [Fault(429, body, {"Retry-After": "1"})]
    started = time.monotonic()
    assert from_file(google, token_file, retry=RetryPolicy(attempts=3, backoff=0.01)).fetch()
    assert time.monotonic() - started >= 1.0


def test_unknown_provider_is_invalid_target(google: GoogleSetup, token_file: Path) -> None:
    wrong = google.workload.resource.replace("airflow-oidc", "no-such-provider")
    with pytest.raises(GoogleRefused, match=r"invalid_target: The target service.*check `audience`") as info:
        from_file(google, token_file, audience=wrong).fetch()
    assert not info.value.retryable


def test_missing_iam_binding_is_permission_denied(google: GoogleSetup, token_file: Path) -> None:
    other = "no-binding@analytics-prod.iam.gserviceaccount.com"
    google.cloud.add_service_account(other)
    with pytest.raises(
        GoogleRefused, match=r"PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken'"
    ) as info:
        from_file(google, token_file, target_principal=other).fetch()
    message = str(info.value)
    assert f"principal:{google.workload.pool}/subject/{WORKLOAD}" in message  # who needs the binding
    assert not info.value.retryable


def test_metadata_server_without_credentials(google: GoogleSetup) -> None:
    with pytest.raises(ConfigurationError, match="metadata server"):
        exchanger(
            google, mode="environment", gce_metadata_url=f"{google.cloud.bigquery.url}/computeMetadata/v1"
        ).fetch()


def test_sts_error_never_echoes_the_subject_token(google: GoogleSetup, token_file: Path) -> None:
    subject = token_file.read_text().strip()
    google.cloud.faults["sts"] = [Fault(400, oauth_error("invalid_grant", f"bad token {subject}")[2].decode())] * 2
    with pytest.raises(GoogleRefused) as info:
        from_file(google, token_file).fetch()
    assert subject not in str(info.value) and "***" in str(info.value)
