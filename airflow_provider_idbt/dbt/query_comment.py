"""The identity in the warehouse's audit log: dbt's query comment as safe JSON, and BigQuery job labels."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import IdentityContext

# dbt reads `query-comment` from dbt_project.yml only and renders it lazily, per statement; the project
# reads this (non-secret) variable there, so the comment changes per task without touching the manifest,
# the vars or anything else that would make dbt re-parse the project.
QUERY_COMMENT_ENV = "IDBT_QUERY_COMMENT"
PROJECT_CONFIG_LINE = "query-comment: \"{{ env_var('" + QUERY_COMMENT_ENV + "', '') }}\""

# Claim name -> how to read it from the verified identity. Groups, principal (often an email or UPN) and
# attributes are available but never on by default: the default comment carries no personal data.
CLAIMS: dict[str, str] = {
    "sub": "subject",
    "iss": "issuer",
    "principal": "principal",
    "groups": "groups",
    "aud": "audience",
    "fingerprint": "fingerprint",
}
DEFAULT_CLAIMS: tuple[str, ...] = ("sub",)
_MAX_VALUE = 200
_LABEL_MAX = 63


@dataclass(frozen=True)
class QueryCommentOptions:
    """Which identity claims go into the comment, and whether they are replaced by their sha256."""

    claims: tuple[str, ...] = DEFAULT_CLAIMS
    hash_claims: bool = False

    def __post_init__(self) -> None:
        unknown = [c for c in self.claims if c not in CLAIMS and not c.startswith("attr:")]
        if unknown:
            raise ConfigurationError(
                f"query comment claims {unknown} are unknown; use {', '.join(CLAIMS)} or attr:<name>"
            )


def _hashed(value: str) -> str:
    # Pseudonymous, not anonymous: who can list the candidates can hash them too; it keeps names out of logs.
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def _claim(identity: IdentityContext, claim: str) -> Any:
    if claim.startswith("attr:"):
        return identity.attributes.get(claim.removeprefix("attr:"))
    value = getattr(identity, CLAIMS[claim])
    return list(value) if isinstance(value, tuple) else value


def query_comment_fields(
    run: Mapping[str, Any], model: str, identity: IdentityContext, options: QueryCommentOptions
) -> dict[str, Any]:
    """The comment's keys: ``app``, the run keys (dag_id, run_id, task_id, try_number, map_index), ``model``,
    then the allowlisted claims (hashed when asked)."""
    fields: dict[str, Any] = {"app": "idbt", **dict(run), "model": model}
    for claim in options.claims:
        value = _claim(identity, claim)
        if value in (None, "", []):
            continue
        if options.hash_claims and claim != "fingerprint":
            value = [_hashed(str(v)) for v in value] if isinstance(value, list) else _hashed(str(value))
        fields[claim] = value
    return fields


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE else value[: _MAX_VALUE - 1] + "…"
    if isinstance(value, list):
        return [_bounded(v) for v in value[:20]]
    return value


def render_query_comment(fields: Mapping[str, Any]) -> str:
    """One line of JSON that cannot end or nest the SQL comment it sits in.

    JSON escapes quotes and control characters; ``ensure_ascii`` keeps look-alike characters out; every
    ``*`` becomes ``\\u002a`` (still the same JSON), so neither ``*/`` (which would end the comment, and which
    dbt refuses) nor ``/*`` (which nests a comment on PostgreSQL) can appear, whatever a claim or run id holds.
    """
    text = json.dumps({k: _bounded(v) for k, v in fields.items()}, ensure_ascii=True, separators=(",", ":"))
    return text.replace("*", "\\u002a")


def project_reads_query_comment(project_dir: str | Path) -> bool:
    """True when the project's dbt_project.yml puts :data:`QUERY_COMMENT_ENV` into its query comment."""
    try:
        return QUERY_COMMENT_ENV in (Path(project_dir) / "dbt_project.yml").read_text(encoding="utf-8")
    except OSError:
        return False


def _label_char(ch: str) -> bool:
    # BigQuery: lowercase letters (international ones too), digits, `_` and `-`.
    return ch in "_-" or ch.isdecimal() or (ch.isalpha() and not ch.isupper())


def _label_text(value: str) -> str:
    return "".join(ch if _label_char(ch) else "_" for ch in unicodedata.normalize("NFKC", value).lower())


def bigquery_job_labels(fields: Mapping[str, Any], prefix: str = "idbt_") -> dict[str, str]:
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
