"""The Airflow side of `idbt_google`: the hook (cache, masking, ID tokens), the Google provider's BigQueryHook
running on our credentials (its requests go to a BigQuery stand-in that records the bearer token), idbt doctor."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.commands.doctor import EXIT_OK, EXIT_PERMANENT, run_doctor
from airflow_provider_idbt.hooks import identity_hook_for
from airflow_provider_idbt.hooks.base import TOKEN_CACHE
from airflow_provider_idbt.hooks.google import FederatedGoogleHookMixin, GoogleWorkloadIdentityHook
from airflow_provider_idbt.identity.google.credentials import FederatedGoogleCredentials
from tests.fixtures.google_fixtures import RUNNER_SA, UNIVERSE, WORKLOAD, GoogleSetup
from tests.fixtures.oidc_provider import write_token

pytestmark = pytest.mark.integration

PROJECT = "analytics-prod"


@pytest.fixture
def gcp_conn(google: GoogleSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    path = write_token(tmp_path / "token", google.subject_token())
    extra = google.extra(
        subject_token_source="file", subject_token_file=str(path), project_id=PROJECT, groups="analytics"
    )
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_GCP", json.dumps({"conn_type": "idbt_google", "extra": extra}))
    return "idbt_gcp", path


def test_hook_caches_and_masks(google: GoogleSetup, gcp_conn: tuple[str, Path]) -> None:
    from airflow.sdk.log import redact

    hook = identity_hook_for(gcp_conn[0])
    assert isinstance(hook, GoogleWorkloadIdentityHook)
    token = hook.get_token(min_ttl=600)
    assert hook.get_token(min_ttl=600) is token
    assert google.cloud.requests == {"sts": 1, "iam": 1}
    assert token.identity.groups == ("analytics",)
    for secret in (token.reveal(), gcp_conn[1].read_text().strip()):
        assert secret not in str(redact(f"value={secret}"))
    id_token = hook.get_id_token("https://reports.example.test")
    assert hook.get_id_token("https://reports.example.test") is id_token
    assert id_token.reveal() not in str(redact(f"value={id_token.reveal()}"))
    assert google.cloud.requests == {"sts": 2, "iam": 2}


def test_bigquery_hook_runs_on_the_federated_credentials(
    google: GoogleSetup, gcp_conn: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
    from google.api_core.client_options import ClientOptions

    caplog.set_level(logging.DEBUG)
    gcp_conn_id = gcp_conn[0]  # an idbt_google connection

    # docs/connections/google.md shows these lines (tests/unit/test_docs_examples.py finds them here).
    class IdbtBigQueryHook(FederatedGoogleHookMixin, BigQueryHook):
        pass

    hook = IdbtBigQueryHook(gcp_conn_id=gcp_conn_id, use_legacy_sql=False)
    credentials, project = hook.get_credentials_and_project_id()
    assert isinstance(credentials, FederatedGoogleCredentials) and project == PROJECT
    assert hook.project_id == PROJECT and hook.get_credentials() is credentials
    # The provider refreshes on every _get_access_token; ours answers from the cache after the first exchange.
    first = hook._get_access_token()
    assert hook._get_access_token() == first
    assert google.cloud.requests == {"sts": 1, "iam": 1}
    assert credentials.identity is not None and credentials.identity.subject == RUNNER_SA
    assert credentials.universe_domain == UNIVERSE
    issued = google.cloud.issued(first)
    assert issued is not None and issued.principal == f"serviceAccount:{RUNNER_SA}"

    # No real BigQuery: the provider's client is pointed at the stand-in, which records the bearer token.
    options = ClientOptions(api_endpoint=google.cloud.bigquery.url, universe_domain=UNIVERSE)
    hook.get_client_options = lambda *args, **kwargs: options  # type: ignore[method-assign]
    client = hook.get_client(project_id=PROJECT)
    assert list(client.list_datasets()) == []
    assert google.cloud.bigquery_calls == [{"authorization": f"Bearer {first}", "project": PROJECT}]
    assert google.cloud.requests["sts"] == 1
    assert first not in caplog.text and gcp_conn[1].read_text().strip() not in caplog.text
    assert first not in repr(credentials)


def test_other_connections_keep_the_providers_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    from google.auth.credentials import AnonymousCredentials

    class Hook(FederatedGoogleHookMixin, GoogleBaseHook):
        pass

    monkeypatch.setenv(
        "AIRFLOW_CONN_PLAIN_GCP",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}),
    )
    credentials, _ = Hook(gcp_conn_id="plain_gcp").get_credentials_and_project_id()
    assert isinstance(credentials, AnonymousCredentials)


def test_impersonation_chain_on_the_hook_is_refused(gcp_conn: tuple[str, Path]) -> None:
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    from airflow_provider_idbt.errors import ConfigurationError

    class Hook(FederatedGoogleHookMixin, GoogleBaseHook):
        pass

    with pytest.raises(ConfigurationError, match="set its `target_principal`"):
        Hook(gcp_conn_id=gcp_conn[0], impersonation_chain=RUNNER_SA).get_credentials()


def doctor(conn_id: str) -> tuple[int, str, str]:
    TOKEN_CACHE.clear()
    out, err = io.StringIO(), io.StringIO()
    return run_doctor(conn_id, out=out, err=err), out.getvalue(), err.getvalue()


def test_doctor(google: GoogleSetup, gcp_conn: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = doctor(gcp_conn[0])
    assert code == EXIT_OK, err
    assert f"subject      {RUNNER_SA}" in out
    assert f"principal    principal:{google.workload.pool}/subject/{WORKLOAD}" in out
    assert "analytics  (declared on the connection)" in out
    assert f"subject token from token file {gcp_conn[1]}" in out
    assert gcp_conn[1].read_text().strip() not in out + err
    extra: dict[str, Any] = google.extra(subject_token_source="file", subject_token_file=str(gcp_conn[1]))
    extra["target_principal"] = "unbound@analytics-prod.iam.gserviceaccount.com"
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_GCP_BAD", json.dumps({"conn_type": "idbt_google", "extra": extra}))
    code, out, err = doctor("idbt_gcp_bad")
    assert code == EXIT_PERMANENT and "PERMISSION_DENIED" in err and "roles/iam.workloadIdentityUser" in err
