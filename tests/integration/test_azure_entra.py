"""The Azure exchanger (msal) against the Entra-shaped token service over HTTPS with the test CA: federated
assertions from workload tokens issued by oauth2-mock-server, a certificate and a client secret; per-scope v1.0 and
v2.0 tokens; msal's cache under min_ttl; and the case list of the first identity issue."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
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
from airflow_provider_idbt.identity import claims as claims_module
from airflow_provider_idbt.identity.azure.claims import clear_tenant_metadata
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.azure.exchanger import AzureCredentialRejected, AzureExchanger, clear_applications
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.aws_sts import GceMetadataServer, mint_from
from tests.fixtures.entra_server import (
    APP_ROLES,
    CERT_APP,
    CUSTOM_API,
    CUSTOM_API_ID,
    DATABRICKS,
    FEDERATED_APP,
    OTHER,
    POSTGRES,
    RUNNER,
    SECRET_APP,
    SQL,
    STRANGER,
    TENANT,
    TENANT_DOMAIN,
    WORKLOADS,
    AzureTestbed,
    Fault,
    azure_testbed,
    new_certificate,
)
from tests.fixtures.identity_servers import free_port
from tests.fixtures.oidc_provider import write_token

pytestmark = pytest.mark.integration
__all__ = ["azure_testbed"]  # the fixture, imported for this module

FAST = RetryPolicy(attempts=3, backoff=0.05)


@pytest.fixture(autouse=True)
def _fresh_msal() -> Iterator[None]:
    clear_applications()
    clear_tenant_metadata()
    yield
    clear_applications()


@pytest.fixture
def token_file(tmp_path: Path, azure_testbed: AzureTestbed) -> Path:
    return write_token(tmp_path / "azure-identity-token", azure_testbed.issuer.token(RUNNER))


def exchanger(
    bed: AzureTestbed,
    login: str = FEDERATED_APP,
    password: str | None = None,
    *,
    retry: RetryPolicy = FAST,
    **extra: Any,
) -> AzureExchanger:
    extra = {"tenantId": TENANT, "authority_host": bed.entra.base, "scopes": f"{SQL}/.default"} | extra
    config = AzureIdentityConfig.from_connection("az_conn", login, password, extra)
    return AzureExchanger(config, retry=retry)


def federated(bed: AzureTestbed, path: Path, **extra: Any) -> AzureExchanger:
    return exchanger(bed, subject_token_file=str(path), **extra)


def assert_hidden(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- success ----------------------------------------------------------------------------------------------------


def test_federated_credential_from_a_token_file(
    azure_testbed: AzureTestbed, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = federated(azure_testbed, token_file, groups="declared-only").fetch()
    app = azure_testbed.app(FEDERATED_APP)
    identity = token.identity
    assert identity.subject == app.object_id and identity.principal == FEDERATED_APP
    assert identity.issuer == f"https://sts.windows.net/{TENANT}/"  # Azure SQL gets v1.0 tokens
    assert identity.groups == APP_ROLES  # app roles win over declared groups
    assert identity.audience == (f"{SQL}/",)
    assert identity.attributes == {"azure_cloud": "AzurePublicCloud", "tid": TENANT}
    assert token.claims.version == "1.0" and token.claims.upn is None
    assert azure_testbed.entra.assertions[-1]["sub"] == RUNNER
    assert 3500 < token.remaining().total_seconds() <= 3600
    assert_hidden([repr(token), repr(token.claims), caplog.text], [token.reveal(), token_file.read_text().strip()])


def test_azure_federated_token_file_variable(
    azure_testbed: AzureTestbed, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The AKS workload identity webhook's variables, as azure-identity's WorkloadIdentityCredential reads them.
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_CLIENT_ID", FEDERATED_APP)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", azure_testbed.entra.base)
    config = AzureIdentityConfig.from_connection("wi", None, None, {"warehouse": "postgresql"})
    assert config.authority == f"{azure_testbed.entra.base}/{TENANT}"
    token = AzureExchanger(config, retry=FAST).fetch()
    assert token.identity.audience == (f"{POSTGRES}/",) and token.identity.principal == FEDERATED_APP


def test_google_id_token_from_the_metadata_server(azure_testbed: AzureTestbed) -> None:
    # Cloud Composer: the worker's service account ID token, for Entra's federation audience.
    issuer = azure_testbed.issuer
    metadata = GceMetadataServer(mint_from(issuer.url, RUNNER, WORKLOADS[RUNNER]["secret"]))
    try:
        extra = {"subject_token_source": "gce_metadata", "gce_metadata_url": metadata.base_url}
        ex = exchanger(azure_testbed, subject_token_audience="api://AzureADTokenExchange", **extra)
        assert ex.fetch().identity.principal == FEDERATED_APP
        assert azure_testbed.entra.assertions[-1]["aud"] == "api://AzureADTokenExchange"
        assert metadata.requests == 1
    finally:
        metadata.close()


def test_aws_web_identity_token_file(
    azure_testbed: AzureTestbed, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EKS IRSA-style projected token with Entra's audience, named by AWS_WEB_IDENTITY_TOKEN_FILE.
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    ex = exchanger(azure_testbed, subject_token_source="aws_web_identity")
    assert ex.fetch().identity.principal == FEDERATED_APP


def test_certificate_credential(azure_testbed: AzureTestbed, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pem = azure_testbed.cert_key_pem + azure_testbed.cert_pem
    ex = exchanger(azure_testbed, CERT_APP, pem, warehouse="databricks", scopes=None)
    token = ex.fetch()
    assert token.identity.principal == CERT_APP and token.identity.audience == (DATABRICKS,)
    assert token.identity.groups == ("warehouse.writer",)
    claims = jwt.decode(token.reveal(), options={"verify_signature": False})
    assert claims["appidacr"] == "2"
    key_body = azure_testbed.cert_key_pem.splitlines()[1]
    assert_hidden([repr(ex), repr(ex.config), caplog.text], [token.reveal(), key_body])


def test_certificate_from_a_file_and_a_tenant_domain(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    path = tmp_path / "app.pem"
    path.write_text(azure_testbed.cert_key_pem + azure_testbed.cert_pem)
    ex = exchanger(azure_testbed, CERT_APP, tenantId=TENANT_DOMAIN, certificate_path=str(path))
    assert ex.fetch().identity.attributes["tid"] == TENANT


def test_client_secret_with_declared_groups_and_no_upn_in_the_identity(
    azure_testbed: AzureTestbed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = exchanger(azure_testbed, SECRET_APP, azure_testbed.secret, groups="analytics, finance").fetch()
    assert token.identity.groups == ("analytics", "finance")  # no app roles: the declared groups
    assert token.claims.upn == "dbt.runner@contoso.test"  # kept with the Entra facts, for the caller only
    event = json.dumps(token.identity.as_event()) + repr(token.identity)
    assert "contoso.test" not in event and "contoso.test" not in repr(token.claims)
    assert_hidden([caplog.text, repr(token)], [azure_testbed.secret, token.reveal()])


def test_one_token_per_scope_and_v2_audiences(azure_testbed: AzureTestbed, token_file: Path) -> None:
    sql = federated(azure_testbed, token_file).fetch()
    pg = federated(azure_testbed, token_file, scopes=f"{POSTGRES}/.default").fetch()
    api = federated(azure_testbed, token_file, scopes=f"{CUSTOM_API}/.default", audience=CUSTOM_API_ID).fetch()
    assert len({sql.fingerprint, pg.fingerprint, api.fingerprint}) == 3
    assert api.identity.issuer == azure_testbed.entra.issuer and api.claims.version == "2.0"
    assert api.identity.audience == (CUSTOM_API_ID,)


def test_v2_token_without_its_audience_configured_fails_verification(
    azure_testbed: AzureTestbed, token_file: Path
) -> None:
    with pytest.raises(TokenVerificationError, match="aud does not match"):
        federated(azure_testbed, token_file, scopes=f"{CUSTOM_API}/.default").fetch()


def test_msal_cache_is_used_until_min_ttl_needs_a_fresh_token(azure_testbed: AzureTestbed, token_file: Path) -> None:
    entra = azure_testbed.entra
    ex = federated(azure_testbed, token_file)
    before = entra.token_requests
    first = ex.fetch(timedelta(minutes=10))
    assert federated(azure_testbed, token_file).fetch(timedelta(minutes=10)) == first  # msal's cache, shared
    assert entra.token_requests == before + 1
    longer = ex.fetch(timedelta(seconds=3600))  # more than the cached token has left: evicted, fetched anew
    assert longer != first and entra.token_requests == before + 2
    assert ex.fetch(fresh=True) != longer and entra.token_requests == before + 3


def test_msal_never_reuses_a_token_with_less_than_five_minutes(azure_testbed: AzureTestbed, token_file: Path) -> None:
    entra = azure_testbed.entra
    entra.token_lifetime = 240
    try:
        before = entra.token_requests
        ex = federated(azure_testbed, token_file)
        assert ex.fetch() != ex.fetch()
        assert entra.token_requests == before + 2
    finally:
        entra.token_lifetime = 3599


# -- subject token problems ----------------------------------------------------------------------------------------


def test_subject_token_for_another_audience(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    path = write_token(tmp_path / "t", azure_testbed.issuer.token(RUNNER, audience="api://someone-else"))
    with pytest.raises(AzureCredentialRejected, match=r"AADSTS700212.*audience 'api://someone-else'") as info:
        federated(azure_testbed, path).fetch()
    assert info.value.code == 700212 and info.value.error == "invalid_client" and not info.value.retryable
    assert str(path) in str(info.value) and path.read_text().strip() not in str(info.value)


def test_local_check_names_the_wrong_audience_before_asking_entra(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    path = write_token(tmp_path / "t", azure_testbed.issuer.token(RUNNER, audience="api://someone-else"))
    before = azure_testbed.entra.token_requests
    with pytest.raises(TokenVerificationError, match="not for audience api://AzureADTokenExchange"):
        federated(azure_testbed, path, subject_issuer=azure_testbed.issuer.url).fetch()
    assert azure_testbed.entra.token_requests == before


def test_subject_not_registered_as_a_federated_credential(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    path = write_token(tmp_path / "t", azure_testbed.issuer.token(STRANGER))
    with pytest.raises(AzureCredentialRejected, match=f"AADSTS700213.*'{STRANGER}'.*subject"):
        federated(azure_testbed, path).fetch()


def test_expired_subject_token_is_refused_before_any_request(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    path = write_token(tmp_path / "t", azure_testbed.issuer.token("expired"))
    before = azure_testbed.entra.token_requests
    with pytest.raises(CredentialRejected, match=r"expired at .* and was not renewed"):
        federated(azure_testbed, path).fetch()
    assert azure_testbed.entra.token_requests == before


def test_bad_signature(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    header, payload, signature = azure_testbed.issuer.token(OTHER).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = RUNNER  # a workload claiming to be another one
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = f"{header}.{forged}.{signature}"
    with pytest.raises(AzureCredentialRejected, match="AADSTS700027: Client assertion failed signature") as info:
        federated(azure_testbed, write_token(tmp_path / "t", token)).fetch()
    assert token not in str(info.value)


def test_alg_none(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    claims = jwt.decode(azure_testbed.issuer.token(RUNNER), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(AzureCredentialRejected, match="AADSTS50027"):
        federated(azure_testbed, write_token(tmp_path / "t", unsigned)).fetch()
    with pytest.raises(TokenVerificationError, match="algorithm 'none'"):
        federated(azure_testbed, tmp_path / "t", subject_issuer=azure_testbed.issuer.url).fetch()


def test_rotated_signing_key_of_the_workload_issuer(azure_testbed: AzureTestbed, token_file: Path) -> None:
    ex = federated(azure_testbed, token_file)
    ex.fetch()
    issuer = azure_testbed.issuer
    issuer.stop()
    issuer.start()  # same port, new key: the old token no longer verifies at Entra
    # The file is renewed while Entra refuses the old token: the refusal (AADSTS700027) makes one re-read.
    source = ex.config.subject_source
    assert source is not None
    read = source.get

    def get(*, refresh: bool = False) -> Any:
        if refresh:
            write_token(token_file, issuer.token(OTHER))
        return read(refresh=refresh)

    object.__setattr__(source, "get", get)
    token = ex.fetch(fresh=True)
    assert token.identity.principal == FEDERATED_APP
    assert azure_testbed.entra.assertions[-1]["sub"] == OTHER


def test_rotated_signing_key_of_entra(azure_testbed: AzureTestbed, token_file: Path) -> None:
    first = federated(azure_testbed, token_file).fetch()
    azure_testbed.entra.rotate_signing_key()  # an unknown kid: the tenant's JWKS is fetched again
    second = federated(azure_testbed, token_file).fetch(fresh=True)
    assert jwt.get_unverified_header(first.reveal())["kid"] != jwt.get_unverified_header(second.reveal())["kid"]


def test_rotated_token_file_is_read_by_the_assertion_callable(azure_testbed: AzureTestbed, token_file: Path) -> None:
    ex = federated(azure_testbed, token_file)
    ex.fetch()
    write_token(token_file, azure_testbed.issuer.token(OTHER))
    ex.fetch(fresh=True)
    assert [a["sub"] for a in azure_testbed.entra.assertions[-2:]] == [RUNNER, OTHER]


def test_missing_token_file_names_the_field(azure_testbed: AzureTestbed, tmp_path: Path) -> None:
    with pytest.raises(ConnectionFieldError, match="subject_token_file"):
        federated(azure_testbed, tmp_path / "absent").fetch()


# -- Entra problems ---------------------------------------------------------------------------------------------


def test_entra_down(token_file: Path) -> None:
    config = AzureIdentityConfig.from_connection(
        "down",
        FEDERATED_APP,
        None,
        {"tenantId": TENANT, "authority_host": f"https://127.0.0.1:{free_port()}", "scopes": f"{SQL}/.default"}
        | {"subject_token_file": str(token_file)},
    )
    with pytest.raises(IdentityProviderUnavailable, match=r"after 3 attempt\(s\)") as info:
        AzureExchanger(config, retry=FAST).fetch()
    assert info.value.retryable


def test_entra_slower_than_the_timeout(azure_testbed: AzureTestbed, token_file: Path) -> None:
    ex = federated(azure_testbed, token_file, timeout=0.5, retry=RetryPolicy(attempts=2, backoff=0.05))
    azure_testbed.entra.faults += [Fault(delay=1.5), Fault(delay=1.5)]
    started = time.monotonic()
    with pytest.raises(IdentityProviderUnavailable, match=r"after 2 attempt\(s\) \(ReadTimeout"):
        ex.fetch()
    assert time.monotonic() - started < 4


def test_server_errors_then_recovery(azure_testbed: AzureTestbed, token_file: Path) -> None:
    azure_testbed.entra.faults += [Fault(503), Fault(500)]
    before = azure_testbed.entra.token_requests
    assert federated(azure_testbed, token_file).fetch().identity.principal == FEDERATED_APP
    assert azure_testbed.entra.token_requests == before + 3


def test_too_many_requests_waits_for_retry_after(azure_testbed: AzureTestbed, token_file: Path) -> None:
    azure_testbed.entra.faults.append(Fault(429, retry_after="1"))
    started = time.monotonic()
    assert federated(azure_testbed, token_file, retry=RetryPolicy(attempts=3, backoff=0.01)).fetch()
    assert time.monotonic() - started >= 1.0


def test_invalid_client_secret(azure_testbed: AzureTestbed) -> None:
    wrong = "azs~not-the-secret-at-all-0123456789"
    with pytest.raises(AzureCredentialRejected, match=r"AADSTS7000215.*Value \(not its Secret ID\)") as info:
        exchanger(azure_testbed, SECRET_APP, wrong).fetch()
    assert info.value.error == "invalid_client" and not info.value.retryable and wrong not in str(info.value)
    assert "Trace ID" not in str(info.value)


def test_unregistered_certificate(azure_testbed: AzureTestbed) -> None:
    key_pem, cert_pem, _ = new_certificate("not-uploaded")
    with pytest.raises(AzureCredentialRejected, match=r"AADSTS700027.*not registered on application") as info:
        exchanger(azure_testbed, CERT_APP, key_pem + cert_pem).fetch()
    assert key_pem.splitlines()[1] not in str(info.value)


def test_unknown_application(azure_testbed: AzureTestbed) -> None:
    with pytest.raises(AzureCredentialRejected, match=r"AADSTS700016.*check the client id"):
        exchanger(azure_testbed, "99999999-9999-4999-8999-999999999999", "whatever-secret").fetch()


def test_unknown_tenant(azure_testbed: AzureTestbed, token_file: Path) -> None:
    with pytest.raises(Exception, match="tenantId"):
        federated(azure_testbed, token_file, tenantId="00000000-0000-4000-8000-000000000000").fetch()


def test_jwks_clients_are_shared() -> None:
    assert claims_module.jwks_client("https://a.test/keys") is claims_module.jwks_client("https://a.test/keys")


def test_hook_and_doctor(azure_testbed: AzureTestbed, token_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from airflow.sdk.log import redact

    from airflow_provider_idbt.commands.doctor import run_doctor
    from airflow_provider_idbt.hooks import identity_hook_for
    from airflow_provider_idbt.hooks.base import TOKEN_CACHE

    extra = {"tenantId": TENANT, "authority_host": azure_testbed.entra.base, "warehouse": "azure_sql"}
    conn = {"conn_type": "idbt_azure", "login": FEDERATED_APP, "extra": extra | {"subject_token_file": str(token_file)}}
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_TEST_AZURE", json.dumps(conn))
    TOKEN_CACHE.clear()
    hook = identity_hook_for("idbt_test_azure")
    token = hook.get_token(min_ttl=600)
    assert hook.get_token(min_ttl=600) is token  # our cache
    pg = hook.get_token(min_ttl=600, scopes=[f"{POSTGRES}/.default"])  # type: ignore[call-arg]
    assert pg.identity.audience == (f"{POSTGRES}/",)
    before = azure_testbed.entra.token_requests
    refreshed = hook.refresh_token(min_ttl=600)
    assert refreshed != token and azure_testbed.entra.token_requests == before + 1  # not msal's cached copy
    for secret in (token.reveal(), pg.reveal(), token_file.read_text().strip()):
        assert secret not in str(redact(f"value={secret}"))
    out, err = io.StringIO(), io.StringIO()
    assert run_doctor("idbt_test_azure", out=out, err=err) == 0, err.getvalue()
    report = out.getvalue()
    assert azure_testbed.app(FEDERATED_APP).object_id in report and "analytics.engineer" in report
    assert f"tid          {TENANT}" in report and token.reveal() not in report
