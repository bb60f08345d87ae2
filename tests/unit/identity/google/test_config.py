"""`idbt_google` connection validation, the endpoint table, and google-auth staying out of DAG parsing."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.google.config import GoogleFederationConfig

AUDIENCE = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/pool-1/providers/prov-1"
SA = "dbt-prod@analytics-prod.iam.gserviceaccount.com"


def config(**extra: Any) -> GoogleFederationConfig:
    base = {"audience": AUDIENCE, "target_principal": SA, "subject_token_file": "/var/run/token"}
    return GoogleFederationConfig.from_connection("g", None, None, base | extra)


def test_defaults_follow_the_universe() -> None:
    cfg = config()
    assert cfg.mode == "federation" and cfg.scopes == ("https://www.googleapis.com/auth/cloud-platform",)
    assert cfg.endpoints.sts_token_url == "https://sts.googleapis.com/v1/token"
    assert cfg.endpoints.service_account_url(SA, "generateIdToken") == (
        f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateIdToken"
    )
    assert (
        cfg.federated_principal
        == "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/pool-1"
    )
    assert cfg.subject_check is None
    other = config(universe_domain="cloud.example.eu")
    assert other.endpoints.sts == "https://sts.cloud.example.eu"
    assert other.endpoints.iam_credentials == "https://iamcredentials.cloud.example.eu"


def test_endpoint_overrides_and_subject_check() -> None:
    cfg = config(
        sts_endpoint="https://sts-psc.p.example.test/",
        iam_credentials_endpoint="http://127.0.0.1:8080",
        subject_issuer="https://issuer.example.test",
        delegates="hop-one@p1.iam.gserviceaccount.com, hop-two@p1.iam.gserviceaccount.com",
        scopes="https://www.googleapis.com/auth/bigquery https://www.googleapis.com/auth/devstorage.read_only",
    )
    assert cfg.endpoints.sts == "https://sts-psc.p.example.test"
    assert cfg.endpoints.iam_credentials == "http://127.0.0.1:8080"
    assert cfg.delegates == ("hop-one@p1.iam.gserviceaccount.com", "hop-two@p1.iam.gserviceaccount.com")
    assert len(cfg.scopes) == 2
    assert cfg.subject_check is not None and cfg.subject_check.audience == ("https:" + AUDIENCE,)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"audience": "projects/1/pools/x"}, "audience"),
        ({"audience": None}, "audience"),
        ({"target_principal": "someone@gmail.com"}, "target_principal"),
        ({"sts_endpoint": "http://sts.example.test"}, "sts_endpoint"),
        ({"lifetime_seconds": 60}, "lifetime_seconds"),
        ({"mode": "magic"}, "mode"),
        ({"keyfile_dict": "{}"}, "keyfile_dict"),
        ({"subject_token_file": None}, "subject_token_source"),
        ({"mode": "environment", "target_principal": None}, "target_principal"),
        ({"delegates": "hop-one@p1.iam.gserviceaccount.com", "target_principal": None}, "delegates"),
        ({"universe_domain": "not a domain"}, "universe_domain"),
        ({"refresh_token": "x"}, "refresh_token"),
    ],
)
def test_invalid_fields_are_named(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ConnectionFieldError) as info:
        config(**extra)
    assert info.value.field == field


def test_login_or_password_is_refused() -> None:
    with pytest.raises(ConnectionFieldError, match="`password`"):
        GoogleFederationConfig.from_connection("g", None, "a-key", {"audience": AUDIENCE})


def test_environment_mode_needs_no_subject_token() -> None:
    cfg = config(mode="environment", audience=None, subject_token_file=None)
    assert cfg.subject_source is None and cfg.cache_key[-1] == "environment"


def test_google_auth_is_not_imported_at_dag_parse_time() -> None:
    code = (
        "import sys, airflow_provider_idbt, airflow_provider_idbt.hooks, airflow_provider_idbt.hooks.google;"
        "from airflow_provider_idbt.get_provider_info import get_provider_info; get_provider_info();"
        "print(sorted(m for m in sys.modules if m.startswith('google.auth')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_no_identity_field_is_hidden_by_airflows_masker() -> None:
    # Airflow masks extras whose key names look sensitive; the identity's own fields must stay readable in logs.
    try:
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
    except ImportError:  # Airflow 3.1
        from airflow.sdk.execution_time.secrets_masker import should_hide_value_for_key  # type: ignore[no-redef]

    from airflow_provider_idbt.get_provider_info import get_provider_info

    entry = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == "idbt_google")
    own = {"mode", "audience", "target_principal", "delegates", "scopes", "project_id", "groups"}
    assert own <= set(entry["conn-fields"])
    assert not [key for key in own if should_hide_value_for_key(key)]
