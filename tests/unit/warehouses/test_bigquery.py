"""BigQuery's documented error texts (403 is also quota), missing grants, job labels, and the generated profile."""

from __future__ import annotations

import json

import pytest

from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.dbt.query_comment import render_query_comment
from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.bigquery import job_labels
from airflow_provider_idbt.warehouses.spec import TOKEN_REFERENCE

DOCUMENTED = [
    ("Access Denied: Table p:d.t: User does not have permission to query table p:d.t.", "permission"),
    (
        "403 POST https://bigquery.googleapis.test/jobs: Access Denied: Project p: User does not have "
        "bigquery.jobs.create permission in project p.",
        "permission",
    ),
    ("Permission bigquery.tables.getData denied on table p.d.t (or it may not exist).", "permission"),
    ("403 Quota exceeded: Your project exceeded quota for free query bytes scanned.", "other"),
    ("403 Exceeded rate limits: too many table update operations for this table.", "other"),
    ("401 Request had invalid authentication credentials. Expected OAuth 2 access token.", "auth"),
    ("google.auth.exceptions.RefreshError: ('invalid_grant: Bad Request')", "auth"),
    # What dbt-bigquery reports when BigQuery answers an oauth-secrets access token with 401.
    (
        "Database Error\n  Unable to generate access token, if you're using impersonate_service_account, make sure "
        'your initial account has the "roles/iam.serviceAccountTokenCreator" role on the account you are trying '
        "to impersonate.\n\n  The credentials do not contain the necessary fields need to refresh the access token. "
        "You must specify refresh_token, token_uri, client_id, and client_secret.",
        "auth",
    ),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "bigquery") == kind


def test_missing_grant() -> None:
    message = "Permission bigquery.tables.getData denied on table p.d.t (or it may not exist)."
    assert missing_grant(message, "bigquery") == "bigquery.tables.getData on table p.d.t"


def test_job_labels_are_declared_with_the_job_label_project_config() -> None:
    spec = warehouse("bigquery")
    assert spec is not None and spec.labels.job_labels is not None
    assert "job-label: true" in spec.labels.project_config
    assert spec.labels.job_labels({"sub": "Svc@Example"}) == {"sub": "svc_example"}


def test_job_labels_follow_dbt_bigquery_sanitizing() -> None:
    # dbt-bigquery labels the job with str() of each JSON value: lowercased, [a-z0-9_-] kept, cut to 63.
    labels = job_labels(
        {
            "app": "idbt",
            "dag_id": "Sales.Daily",
            "run_id": "manual__2026-01-01T00:00:00+00:00",
            "try_number": 2,
            "map_index": -1,
            "model": "model.shop.orders",
            "sub": " Ünïcode X ",
            "groups": ["a", "b"],
            "attr:dept": "Fin",
        }
    )
    assert labels == {
        "app": "idbt",
        "dag_id": "sales_daily",
        "run_id": "manual__2026-01-01t00_00_00_00_00",
        "try_number": "2",
        "map_index": "-1",
        "model": "model_shop_orders",
        "sub": "_n_code_x",
        "groups": "__a____b__",
        "attr_dept": "fin",
    }
    for key, value in labels.items():
        assert key[0].isalpha() and len(key) <= 63 and len(value) <= 63
        assert all(ch in "abcdefghijklmnopqrstuvwxyz0123456789_-" for ch in key + value)


def test_job_labels_are_what_dbt_reads_back_from_the_rendered_comment() -> None:
    fields = {"app": "idbt", "run_id": "a*/b" + "x" * 80, "try_number": 1, "flag": True}
    decoded = json.loads(render_query_comment(fields))  # what dbt-bigquery parses: `*` escaped, same JSON
    assert job_labels(fields) == job_labels(decoded)
    assert job_labels(fields)["run_id"] == ("a__b" + "x" * 80)[:63]
    assert job_labels(fields)["flag"] == "true"


def test_generated_profile_is_oauth_secrets_with_the_token() -> None:
    target = render_target("bigquery", {"database": "p", "schema": "d", "timeout_seconds": 60, "location": "EU"})
    assert target == {
        "type": "bigquery",
        "method": "oauth-secrets",
        "project": "p",
        "dataset": "d",
        "location": "EU",
        "job_execution_timeout_seconds": 60,
        "threads": 1,
        "token": TOKEN_REFERENCE,
    }
    assert render_target("bigquery", {"project": "p", "dataset": "d", "method": "oauth-secrets"})["method"] == (
        "oauth-secrets"
    )


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"project": "p", "dataset": "d", "method": "service-account"}, "field `method` is always 'oauth-secrets'"),
        ({"project": "p", "dataset": "d", "token": "x"}, "field `token` must not be set"),
        ({"project": "p", "dataset": "d", "keyfile": "/k.json"}, "unknown field `keyfile`"),
        ({"project": "p", "dataset": "d", "refresh_token": "r"}, "unknown field `refresh_token`"),
        ({"dataset": "d"}, "field `project` is required"),
    ],
)
def test_generated_profile_refuses_other_credentials(fields: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigurationError, match=said.replace("(", r"\(")):
        render_target("bigquery", fields)
