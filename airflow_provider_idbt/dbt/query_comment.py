"""The identity in the warehouse's audit log: dbt's query comment as safe JSON (job labels: warehouses/)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_CONFIG, QUERY_COMMENT_ENV

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


def project_config_for(adapter: str | None) -> str:
    """The dbt_project.yml lines that label every statement with the identity on this warehouse."""
    spec = warehouse(adapter)
    return spec.labels.project_config if spec is not None else QUERY_COMMENT_CONFIG
