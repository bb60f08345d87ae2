"""Job binding through the hooks: every connection type accepts the allowed_* extras (form fields included),
refuses a malformed one, and IdentityHook.check_job reads the binding from the Airflow connection."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError, JobNotAllowed
from airflow_provider_idbt.get_provider_info import get_provider_info
from airflow_provider_idbt.hooks import identity_hook_for
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.fields import checked_conn_id
from airflow_provider_idbt.identity.google.config import GoogleFederationConfig
from airflow_provider_idbt.identity.job_binding import JOB_BINDING_KEYS
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig

BINDING = {"allowed_dags": ["team_a_*"], "allowed_tags": "finance", "allowed_bundles": ["platform-*"]}
GOOGLE_AUDIENCE = (
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/pool-1/providers/prov-1"
)

CONFIGS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "idbt_oidc": lambda extra: OidcClientConfig.from_connection("c", "https://idp.test", "client-1", "s-1", extra),
    "idbt_aws": lambda extra: AwsWebIdentityConfig.from_connection(
        "c",
        None,
        None,
        {"role_arn": "arn:aws:iam::123456789012:role/r", "region_name": "eu-west-1", "subject_token_file": "/t"}
        | extra,
    ),
    "idbt_google": lambda extra: GoogleFederationConfig.from_connection(
        "c", None, None, {"audience": GOOGLE_AUDIENCE, "subject_token_file": "/t"} | extra
    ),
    "idbt_azure": lambda extra: AzureIdentityConfig.from_connection(
        "c",
        "0a1b2c3d-1111-4222-8333-944455556666",
        "client-secret-1",
        {"tenantId": "7f3c1e2a-4b5d-4c6e-8f90-a1b2c3d4e5f6", "warehouse": "azure_sql"} | extra,
    ),
}


@pytest.mark.parametrize("conn_type", sorted(CONFIGS))
def test_every_connection_type_accepts_the_binding_without_a_warning(
    conn_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        CONFIGS[conn_type](dict(BINDING))
    assert "unknown extra" not in caplog.text


@pytest.mark.parametrize("conn_type", sorted(CONFIGS))
def test_every_connection_type_refuses_a_malformed_binding(conn_type: str) -> None:
    with pytest.raises(ConnectionFieldError) as caught:
        CONFIGS[conn_type]({"allowed_dags": []})
    assert caught.value.field == "allowed_dags" and "empty list" in str(caught.value)


def test_every_connection_form_offers_the_binding_fields() -> None:
    for entry in get_provider_info()["connection-types"]:
        assert JOB_BINDING_KEYS <= set(entry["conn-fields"]), entry["connection-type"]


def _set_connection(monkeypatch: pytest.MonkeyPatch, name: str, extra: dict[str, Any]) -> None:
    conn = {"conn_type": "idbt_oidc", "host": "https://idp.test", "login": "runner", "password": "s-1", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(conn))


def test_check_job_reads_the_binding_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_connection(monkeypatch, "idbt_bound", {"audience": "wh", **BINDING})
    hook = identity_hook_for("idbt_bound")
    hook.check_job("team_a_daily", ("finance",), "platform-prod")
    with pytest.raises(JobNotAllowed, match=r"connection `idbt_bound` is bound to other jobs: DAG `intruder`"):
        hook.check_job("intruder", ("finance",), "platform-prod")
    with pytest.raises(JobNotAllowed, match="allowed_bundles"):
        hook.check_job("team_a_daily", ("finance",), "dags-folder")


def test_check_job_lets_any_dag_use_an_unbound_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_connection(monkeypatch, "idbt_open", {"audience": "wh"})
    identity_hook_for("idbt_open").check_job("anything", (), None)


def test_check_job_refuses_a_malformed_binding_as_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_connection(monkeypatch, "idbt_broken", {"audience": "wh", "allowed_tags": 5})
    with pytest.raises(ConnectionFieldError, match=r"connection `idbt_broken`: field `allowed_tags` is a int"):
        identity_hook_for("idbt_broken").check_job("any", (), None)


@pytest.mark.parametrize("good", ["idbt_prod", "idbt-dev.eu", "team:a/b"])
def test_a_rendered_connection_id_is_kept(good: str) -> None:
    assert checked_conn_id(good) == good


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ("", "an empty string"),
        ("   ", "an empty string"),
        ("idbt_ prod", "`idbt_ prod`"),
        ("idbt_{{ x }}", "`idbt_{{ x }}`"),
        (None, "None"),
    ],
)
def test_an_empty_or_malformed_rendered_connection_id_says_what_to_check(bad: object, shown: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        checked_conn_id(bad)
    message = str(caught.value)
    assert message.startswith(f"identity_conn_id is {shown}, which is not an Airflow connection id")
    assert "AIRFLOW_VAR_" in message and not caught.value.retryable
