"""BigQuery (dbt-bigquery): the token as an OAuth access token (`method: oauth-secrets`), error rows, job labels."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.warehouses.spec import (
    QUERY_COMMENT_REFERENCE,
    IdentityLabels,
    Namespace,
    ProfileFields,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

_LABEL_MAX = 63
_NOT_IN_LABEL = re.compile(r"[^a-z0-9_-]")


def _label(text: str) -> str:
    # dbt-bigquery 1.12's rule for keys and values alike: trimmed, lowercased, every character other than
    # a-z, 0-9, `_` and `-` replaced by `_`, cut to BigQuery's 63.
    return _NOT_IN_LABEL.sub("_", text.strip().lower())[:_LABEL_MAX]


def job_labels(fields: Mapping[str, Any]) -> dict[str, str]:
    """The labels BigQuery records on each query job for a comment of these fields (``job-label: true``).

    dbt-bigquery makes them itself: it reads the rendered comment as JSON and labels the job with each key
    and ``str()`` of each value, sanitized by one rule. This is that mapping, so a label to filter
    ``INFORMATION_SCHEMA.JOBS`` by can be computed from the run's keys. It is lossy (case, punctuation and
    non-ASCII letters become ``_``; long values are cut at 63 characters); the comment in the job's query
    text keeps the exact values. dbt adds a ``dbt_invocation_id`` label of its own.
    """
    decoded = json.loads(json.dumps(dict(fields), default=str))  # the values as dbt-bigquery reads them back
    return {_label(str(key)): _label(str(value)) for key, value in decoded.items()}


PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: bigquery
      method: oauth-secrets     # the token is a short-lived OAuth access token; no refresh token, no key
      token: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"
      project: acme-analytics   # always set: without it dbt-bigquery asks the environment's credentials
      dataset: analytics
      location: EU
      job_execution_timeout_seconds: 600
      job_retries: 1
      threads: 1
"""

WAREHOUSE = WarehouseSpec(
    adapter="bigquery",
    title="BigQuery",
    extra="bigquery",
    profile=ProfileFields(
        # dbt-bigquery reads `project`/`dataset` as its `database`/`schema`. A profile without a project has
        # dbt-bigquery call google.auth.default() for one: ambient credentials, which a task must never use.
        required=("project", "dataset"),
        optional={
            "location": None,
            "execution_project": None,
            "quota_project": None,
            "priority": None,
            "maximum_bytes_billed": None,
            "reservation": None,
            "impersonate_service_account": None,
            "scopes": None,
            "job_execution_timeout_seconds": None,
            "job_creation_timeout_seconds": None,
            "job_retries": None,
            "job_retry_deadline_seconds": None,
            "api_endpoint": None,
            "threads": 1,
        },
        token_field="token",
        aliases={
            "database": "project",
            "schema": "dataset",
            "retries": "job_retries",
            "timeout_seconds": "job_execution_timeout_seconds",
        },
        fixed={"method": "oauth-secrets"},
    ),
    profile_snippet=PROFILE_SNIPPET,
    # 403 is also quota and rate limits, which are transient, not a missing grant: those rows come first.
    failures=failure_rows(
        "bigquery",
        ("other", r"quota exceeded|rate ?limit|rateLimitExceeded|quotaExceeded"),
        ("auth", r"\b401\b|invalid authentication credentials|invalid_grant|RefreshError|reauthenticat"),
        # An access token without a refresh token (oauth-secrets) that BigQuery answered with 401: google-auth
        # tries to refresh it and cannot, so dbt reports this instead of the 401.
        ("auth", r"necessary fields need to refresh the access token"),
        ("permission", r"access denied|accessDenied|\b403\b|permission [\w.]+ denied|does not have [\w.]+ permission"),
    ),
    missing_grants=missing_grant_rows(
        r"permission ([\w.]+) denied on (\w+ [^\s(]+)",
        r"does not have ([\w.]+) permission",
    ),
    namespace=Namespace("bigquery"),
    labels=IdentityLabels(
        recorded_in="the job's query text (`INFORMATION_SCHEMA.JOBS`) and, with `job-label: true`, its labels",
        project_config=f'query-comment:\n  comment: "{QUERY_COMMENT_REFERENCE}"\n  job-label: true',
        job_labels=job_labels,
    ),
)
