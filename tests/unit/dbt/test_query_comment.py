"""The identity query comment: allowlisted claims, hashing, JSON that cannot leave its comment; BigQuery labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from airflow_provider_idbt.dbt.query_comment import (
    QueryCommentOptions,
    project_reads_query_comment,
    query_comment_fields,
    render_query_comment,
)
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_CONFIG

RUN = {"dag_id": "d", "run_id": "manual__2026-01-01T00:00:00+00:00", "task_id": "t", "try_number": 1, "map_index": -1}
IDENTITY = IdentityContext(
    "https://idp.test/",
    "svc-runner",
    datetime(2030, 1, 1, tzinfo=UTC),
    "sha256:abcd",
    principal="ada@example.test",
    groups=("analytics",),
)


def test_default_carries_run_model_and_subject_only() -> None:
    fields = query_comment_fields(RUN, "model.p.m", IDENTITY, QueryCommentOptions())
    assert fields == {"app": "idbt", **RUN, "model": "model.p.m", "sub": "svc-runner"}
    text = render_query_comment(fields)
    assert "ada@example.test" not in text and "analytics" not in text
    assert json.loads(text) == fields


def test_allowlist_and_hashing() -> None:
    options = QueryCommentOptions(("sub", "principal", "groups", "fingerprint"), hash_claims=True)
    fields = query_comment_fields(RUN, "m", IDENTITY, options)
    assert fields["sub"].startswith("sha256:") and fields["principal"].startswith("sha256:")
    assert fields["groups"][0].startswith("sha256:") and fields["fingerprint"] == "sha256:abcd"
    assert "svc-runner" not in render_query_comment(fields)


def test_unknown_claim_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="email"):
        QueryCommentOptions(("email",))


@pytest.mark.parametrize("hostile", ["x */ drop table t; /*", "a/*b", "*/", "\n-- \u202e", "'; select 1"])
def test_hostile_values_cannot_end_or_nest_the_comment(hostile: str) -> None:
    fields = query_comment_fields({**RUN, "run_id": hostile}, "m", IDENTITY, QueryCommentOptions())
    text = render_query_comment(fields)
    assert "*/" not in text and "/*" not in text and "\n" not in text
    assert text.isascii()
    assert json.loads(text)["run_id"] == hostile


def test_long_values_are_bounded() -> None:
    text = render_query_comment({"run_id": "r" * 5000})
    assert len(text) < 300


def test_project_line_is_detected(tmp_path) -> None:
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    assert not project_reads_query_comment(tmp_path)
    (tmp_path / "dbt_project.yml").write_text("name: p\n" + QUERY_COMMENT_CONFIG + "\n")
    assert project_reads_query_comment(tmp_path)
