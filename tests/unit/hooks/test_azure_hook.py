"""AzureIdentityHook without a server: resolution by conn_type, form behaviour, and msal staying unimported until a
token is asked for (DAG files import the provider at parse time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.hooks import identity_hook_for
from airflow_provider_idbt.hooks.azure import AzureIdentityHook
from tests.fixtures.entra_server import new_certificate

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-a1b2c3d4e5f6"


def test_resolved_by_conn_type_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "idbt_azure", "login": "app", "password": "s3cret-value", "extra": {"tenantId": TENANT}}
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_AZ", json.dumps(conn))
    hook = identity_hook_for("idbt_az")
    assert isinstance(hook, AzureIdentityHook)
    with pytest.raises(ConnectionFieldError, match="scopes"):
        hook.get_config()
    assert "host" in AzureIdentityHook.get_ui_field_behaviour()["hidden_fields"]


def test_certificate_key_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.log import redact

    key_pem, cert_pem, _ = new_certificate()
    extra = {"tenantId": TENANT, "warehouse": "azure_sql"}
    conn = {"conn_type": "idbt_azure", "login": "app", "password": key_pem + cert_pem, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_AZ_CERT", json.dumps(conn))
    config = AzureIdentityHook("idbt_az_cert").get_config()
    assert config.certificate is not None
    serialized = config.certificate.private_key.reveal()
    assert serialized not in str(redact(f"key={serialized}"))


def test_scopes_override_per_call(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    extra = {"tenantId": TENANT, "warehouse": "azure_sql"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_IDBT_AZ_S", json.dumps({"conn_type": "idbt_azure", "login": "a", "password": "p", "extra": extra})
    )
    hook = AzureIdentityHook("idbt_az_s")
    hook._scopes = ("https://ossrdbms-aad.database.windows.net/.default",)
    assert hook.get_config().scopes == hook._scopes


def test_msal_is_not_imported_at_dag_parse_time() -> None:
    code = (
        "import sys, airflow_provider_idbt, airflow_provider_idbt.hooks, airflow_provider_idbt.hooks.azure, "
        "airflow_provider_idbt.identity.azure.exchanger; "
        "from airflow_provider_idbt.get_provider_info import get_provider_info; get_provider_info(); "
        "print('msal' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
