"""BigQuery's documented error texts (403 is also quota), missing grants, and job labels."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.bigquery import job_labels

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
    assert spec.labels.job_labels({"sub": "Svc@Example"}) == {"idbt_sub": "svc_example"}


def test_bigquery_labels_are_sanitized() -> None:
    labels = job_labels(
        {"dag_id": "Sales.Daily", "run_id": "manual__2026-01-01T00:00:00+00:00", "try_number": 2, "9": "Ünïcode X"}
    )
    assert labels["idbt_dag_id"] == "sales_daily"
    assert labels["idbt_run_id"] == "manual__2026-01-01t00_00_00_00_00"
    assert labels["idbt_try_number"] == "2"
    assert labels["idbt_9"] == "ünïcode_x"
    for key, value in labels.items():
        assert key[0].isalpha() and key.islower()
        assert len(key) <= 63 and len(value) <= 63
        assert all(ch.isalnum() or ch in "_-" for ch in key + value)


def test_bigquery_long_values_keep_a_distinguishing_hash() -> None:
    a = job_labels({"run_id": "x" * 80 + "a"}, prefix="")
    b = job_labels({"run_id": "x" * 80 + "b"}, prefix="")
    assert len(a["run_id"]) == 63 and a != b
    assert job_labels({"9lives": "v"}, prefix="") == {"l9lives": "v"}
    assert job_labels({"k" * 80: "v"}, prefix="") == {"k" * 63: "v"}
