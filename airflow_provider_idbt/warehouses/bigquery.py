"""BigQuery (dbt-bigquery): documented error rows, lineage naming, and the identity as job labels."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_idbt.warehouses.spec import (
    QUERY_COMMENT_REFERENCE,
    IdentityLabels,
    Namespace,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

_LABEL_MAX = 63


def _label_char(ch: str) -> bool:
    # BigQuery: lowercase letters (international ones too), digits, `_` and `-`.
    return ch in "_-" or ch.isdecimal() or (ch.isalpha() and not ch.isupper())


def _label_text(value: str) -> str:
    return "".join(ch if _label_char(ch) else "_" for ch in unicodedata.normalize("NFKC", value).lower())


def job_labels(fields: Mapping[str, Any], prefix: str = "idbt_") -> dict[str, str]:
    """The comment's keys as BigQuery job labels: keys and values sanitized, at most 63 characters each.

    Keys start with a letter; lists are joined with ``-``; a value cut to fit keeps a short hash of the
    whole value at its end, so two long run ids stay distinct.
    """
    labels: dict[str, str] = {}
    for key, raw in fields.items():
        if raw is None:
            continue
        name = _label_text(prefix + str(key))
        if not name[:1].isalpha():
            name = "l" + name
        text = "-".join(str(v) for v in raw) if isinstance(raw, Sequence) and not isinstance(raw, str) else str(raw)
        value = _label_text(text)
        if len(value) > _LABEL_MAX:
            value = value[: _LABEL_MAX - 9] + "-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        labels[name[:_LABEL_MAX]] = value
    return labels


WAREHOUSE = WarehouseSpec(
    adapter="bigquery",
    title="BigQuery",
    # 403 is also quota and rate limits, which are transient, not a missing grant: those rows come first.
    failures=failure_rows(
        "bigquery",
        ("other", r"quota exceeded|rate ?limit|rateLimitExceeded|quotaExceeded"),
        ("auth", r"\b401\b|invalid authentication credentials|invalid_grant|RefreshError|reauthenticat"),
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
