"""`idbt_azure` connection validation (identity/azure/config.py), the cloud and warehouse tables, and the
certificate loader: no server needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import NoEncryption, load_pem_private_key, pkcs12

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.azure.clouds import CLOUDS, accepted_audiences, resource_of
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.sources import FileTokenSource
from tests.fixtures.entra_server import new_certificate

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-a1b2c3d4e5f6"
CLIENT = "0a1b2c3d-1111-4222-8333-944455556666"


@pytest.fixture(autouse=True)
def _no_workload_identity_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def config(password: str | None = None, login: str | None = CLIENT, **extra: Any) -> AzureIdentityConfig:
    extra = {"tenantId": TENANT, "warehouse": "azure_sql"} | extra
    extra = {k: v for k, v in extra.items() if v is not None}
    return AzureIdentityConfig.from_connection("az", login, password, extra)


def field_error(password: str | None = None, login: str | None = CLIENT, **extra: Any) -> ConnectionFieldError:
    with pytest.raises(ConnectionFieldError) as info:
        config(password, login, **extra)
    return info.value


def test_federated_by_default_from_the_aks_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    cfg = config()
    assert cfg.credential == "federated"
    assert isinstance(cfg.subject_source, FileTokenSource) and cfg.subject_source.path == str(tmp_path / "token")
    assert cfg.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert cfg.scopes == ("https://database.windows.net/.default",)


def test_federated_without_the_variable_names_it() -> None:
    error = field_error()
    assert error.field == "subject_token_source" and "AZURE_FEDERATED_TOKEN_FILE" in str(error)


def test_workload_identity_variables_fill_client_tenant_and_authority(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/")
    cfg = AzureIdentityConfig.from_connection(
        "wi", None, None, {"subject_token_file": str(tmp_path / "t"), "warehouse": "azure_sql"}
    )
    assert (cfg.client_id, cfg.tenant_id) == (CLIENT, TENANT)
    assert cfg.authority == f"https://login.microsoftonline.us/{TENANT}"


@pytest.mark.parametrize(
    ("cloud", "host", "sql", "audience"),
    [
        ("AzureUSGovernment", "login.microsoftonline.us", "database.usgovcloudapi.net", "USGov"),
        ("AzureChinaCloud", "login.chinacloudapi.cn", "database.chinacloudapi.cn", "China"),
    ],
)
def test_sovereign_clouds_from_the_table(cloud: str, host: str, sql: str, audience: str, tmp_path: Path) -> None:
    cfg = config(cloud_environment=cloud, subject_token_file=str(tmp_path / "t"))
    assert cfg.authority == f"https://{host}/{TENANT}"
    assert cfg.scopes == (f"https://{sql}/.default",)
    assert cfg.subject_check is None and CLOUDS[cloud].federation_audience.endswith(audience)
    checked = config(cloud_environment=cloud, subject_token_file=str(tmp_path / "t"), subject_issuer="https://k8s.test")
    assert checked.subject_check is not None
    assert checked.subject_check.audience == (CLOUDS[cloud].federation_audience,)


@pytest.mark.parametrize(
    ("warehouse", "scope"),
    [
        ("fabric", "https://database.windows.net/.default"),
        ("synapse", "https://database.windows.net/.default"),
        ("postgresql", "https://ossrdbms-aad.database.windows.net/.default"),
        ("databricks", "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"),
    ],
)
def test_warehouse_scopes(warehouse: str, scope: str) -> None:
    assert config("s3cret-value", warehouse=warehouse).scopes == (scope,)


def test_snowflake_needs_its_application_id_uri() -> None:
    assert field_error("s", warehouse="snowflake").field == "resource"
    cfg = config("s", warehouse="snowflake", resource="api://snowflake-prod/")
    assert cfg.scopes == ("api://snowflake-prod/.default",)
    assert accepted_audiences(cfg.scopes) == ("api://snowflake-prod", "api://snowflake-prod/")


def test_scopes_and_warehouse_are_exclusive_and_one_is_needed() -> None:
    assert field_error("s", scopes="https://x.test/.default").field == "warehouse"
    assert field_error("s", warehouse=None).field == "scopes"
    assert field_error("s", warehouse="oracle").field == "warehouse"
    assert config("s", warehouse=None, scopes="api://a/.default, api://b/.default").scopes == (
        "api://a/.default",
        "api://b/.default",
    )
    assert resource_of("api://a/session:role-any") == "api://a"


def test_credential_is_chosen_from_what_is_given(tmp_path: Path) -> None:
    key_pem, cert_pem, _ = new_certificate()
    assert config("plain-secret").credential == "client_secret"
    cfg = config(key_pem + cert_pem)
    assert cfg.credential == "certificate" and cfg.certificate is not None
    assert key_pem not in repr(cfg) and "plain" not in repr(config("plain-secret"))
    path = tmp_path / "app.pem"
    path.write_text(cert_pem + key_pem)
    assert config(certificate_path=str(path)).credential == "certificate"


def test_two_credentials_are_refused(tmp_path: Path) -> None:
    assert field_error("secret", subject_token_file=str(tmp_path / "t")).field == "subject_token_file"
    assert field_error("secret", certificate_path=str(tmp_path / "c")).field == "password"
    assert field_error(credential="client_secret").field == "password"
    assert field_error(credential="certificate").field == "certificate_path"
    assert field_error("secret", credential="federated").field == "password"


def test_secrets_in_extra_are_refused() -> None:
    for name in ("client_secret", "certificate_data", "private_key"):
        assert field_error(**{name: "x"}).field == name


def test_pfx_and_unusable_certificates(tmp_path: Path) -> None:
    key_pem, _, cert = new_certificate()
    key = load_pem_private_key(key_pem.encode(), None)
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(b"app", key, cert, None, NoEncryption()))  # type: ignore[arg-type]
    assert config(certificate_path=str(pfx)).certificate is not None
    other_key, _, _ = new_certificate()
    _, other_cert, _ = new_certificate()
    error = field_error(other_key + other_cert)
    assert error.field == "password" and "no certificate matches" in str(error)
    assert other_key.splitlines()[1] not in str(error)
    assert field_error(certificate_path=str(tmp_path / "absent.pem")).field == "certificate_path"


@pytest.mark.parametrize("tenant", ["common", "organizations", "consumers", "not a tenant"])
def test_user_sign_in_tenants_are_refused(tenant: str) -> None:
    assert field_error("s", tenantId=tenant).field == "tenantId"


def test_tenant_spellings_of_the_azure_provider() -> None:
    assert config("s", tenantId=None, tenant_id="contoso.onmicrosoft.com").tenant_id == "contoso.onmicrosoft.com"
    assert config("s", tenantId=None, workload_identity_tenant_id=TENANT).tenant_id == TENANT
    assert field_error("s", tenantId=None).field == "tenantId"


def test_authority_host_must_be_https_without_a_path() -> None:
    assert config("s", authority_host="https://127.0.0.1:8443").authority_host == "https://127.0.0.1:8443"
    for bad in ("http://127.0.0.1:8443", "https://login.microsoftonline.com/tenant"):
        assert field_error("s", authority_host=bad).field == "authority_host"
    assert field_error("s", cloud_environment="AzureGermanCloud").field == "cloud_environment"


def test_missing_client_id() -> None:
    assert field_error("s", login=None).field == "login"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("credential", "DeviceCodeCredential"),
        ("credential", "InteractiveBrowserCredential"),
        ("flow", "acquire_token_interactive"),
        ("flow", "initiate_device_flow"),
        ("auth_flow", "acquire_token_by_username_password"),
        ("grant_type", "authorization_code"),
        ("auth_type", "on-behalf-of"),
        ("user_assertion", "eyJ..."),
        ("username", "someone@contoso.test"),
    ],
)
def test_msal_interactive_flows_are_refused_by_name(key: str, value: str) -> None:
    error = field_error("s", **{key: value})
    assert error.field == key and "client credentials" in str(error)
