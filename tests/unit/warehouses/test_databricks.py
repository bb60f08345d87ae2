"""Databricks' Unity Catalog error classes, the connector's refusals, missing grants, and the generated profile."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.dbt.query_comment import CLAIMS
from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.warehouses.databricks import QUERY_TAG_KEYS, QUERY_TAGS_TEMPLATE
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR, TOKEN_REFERENCE

DOCUMENTED = [
    (
        "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table 'main.raw.orders'.",
        "permission",
    ),
    ("PERMISSION_DENIED: User does not have USE SCHEMA on Schema 'main.raw'.", "permission"),
    ("Error during request to server: Invalid access token.", "auth"),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "databricks") == kind


def test_missing_grant() -> None:
    message = "User does not have SELECT on Table 'main.raw.orders'."
    assert missing_grant(message, "databricks") == "SELECT on Table 'main.raw.orders'"


def test_the_connectors_refusals_are_classified() -> None:
    # What databricks-sql-connector raises for OpenSession refused with 401 / 403 (reason-phrase header).
    assert classify_message("Error during request to server: : Invalid access token..", "databricks") == "auth"
    refused = "Error during request to server: : PERMISSION_DENIED: User does not have CAN USE on SQL warehouse 'w'.."
    assert classify_message(refused, "databricks") == "permission"
    assert classify_message("http-code=403, method=OpenSession", "databricks") == "permission"


def test_generated_profile_takes_the_token_and_tags_queries_from_the_comment() -> None:
    target = render_target(
        "databricks", {"host": "h", "http_path": "/sql/1.0/warehouses/w", "database": "main", "schema": "s"}
    )
    assert target["token"] == TOKEN_REFERENCE and target["catalog"] == "main" and target["threads"] == 1
    assert target["query_tags"] == QUERY_TAGS_TEMPLATE
    assert "env_var('IDBT_QUERY_COMMENT', '')" in QUERY_TAGS_TEMPLATE and TOKEN_ENV_VAR not in QUERY_TAGS_TEMPLATE
    with pytest.raises(ConfigurationError, match="field `token` must not be set"):
        render_target("databricks", {"host": "h", "http_path": "p", "schema": "s", "token": "x"})
    with pytest.raises(ConfigurationError, match="unknown field `client_secret`"):
        render_target("databricks", {"host": "h", "http_path": "p", "schema": "s", "client_secret": "x"})
    with pytest.raises(ConfigurationError, match="unknown field `query_tags`"):
        render_target("databricks", {"host": "h", "http_path": "p", "schema": "s", "query_tags": "{}"})


def test_query_tag_keys_fit_the_adapters_limits() -> None:
    # 20 tags at most with dbt-databricks' own four; every key a scalar of the comment.
    assert len(QUERY_TAG_KEYS) + 4 <= 20
    assert set(QUERY_TAG_KEYS) <= {"app", "dag_id", "run_id", "task_id", "try_number", "map_index", "model", *CLAIMS}
