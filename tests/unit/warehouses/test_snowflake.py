"""Snowflake's documented error texts and missing grants; "does not exist or not authorized" is not a verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_provider_idbt.dbt.profiles import render_target
from airflow_provider_idbt.dbt.query_comment import QueryCommentOptions, query_comment_fields, render_query_comment
from airflow_provider_idbt.dbt.results import classify_message, missing_grant
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.snowflake import QUERY_TAG_LIMIT
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV, TOKEN_REFERENCE

DOCUMENTED = [
    (
        "003001 (42501): SQL access control error: Insufficient privileges to operate on table 'ORDERS'",
        "permission",
    ),
    ("Insufficient privileges to operate on schema 'RAW'", "permission"),
    ("390318 (08001): Failed to connect to DB. OAuth access token expired.", "auth"),
    ("390303 (08001): Invalid OAuth access token.", "auth"),
    ("250001 (08001): Failed to connect to DB: Incorrect username or password was specified.", "auth"),
    ("002003 (42S02): SQL compilation error: Object 'RAW.ORDERS' does not exist or not authorized.", "other"),
]


@pytest.mark.parametrize(("message", "kind"), DOCUMENTED)
def test_documented_messages(message: str, kind: str) -> None:
    assert classify_message(message, "snowflake") == kind


def test_missing_grant() -> None:
    assert missing_grant("Insufficient privileges to operate on table 'ORDERS'", "snowflake") == "table 'ORDERS'"


ROLE_MESSAGES = [
    (
        "250001 (08001): Failed to connect to DB: idbt.snowflakecomputing.com:443. The role requested in the "
        "connection or the default role if none was requested in the connection ('FINANCE') is not granted to "
        "this user. Please grant the role to the user or request to use a different role.",
        "role FINANCE",
    ),
    (
        "250001 (08001): Failed to connect to DB: idbt.snowflakecomputing.com:443. Role 'FINANCE' specified in "
        "the connect string does not exist or not authorized. Contact your local system administrator, or "
        "attempt to login with another role, e.g. PUBLIC.",
        "role FINANCE",
    ),
]


@pytest.mark.parametrize(("message", "grant"), ROLE_MESSAGES)
def test_a_role_the_login_may_not_use_is_a_permission_verdict(message: str, grant: str) -> None:
    # Not "auth": a fresh token carries the same grants, so refreshing and running again would not help.
    assert classify_message(message, "snowflake") == "permission"
    assert (missing_grant(message, "snowflake") or "").lower() == grant.lower()


def test_external_oauth_messages() -> None:
    assert (
        classify_message(
            "390309 (08004): The user you were trying to authenticate as differs from the user "
            "tied to the access token.",
            "snowflake",
        )
        == "auth"
    )
    assert (
        classify_message(
            "The role requested in the connection, or the default role if none was requested "
            "in the connection ('SYSADMIN'), is not listed in the Access Token or was filtered.",
            "snowflake",
        )
        == "permission"
    )


GIVEN = {"account": "myorg-acct", "database": "analytics", "warehouse": "transforming", "schema": "marts"}


def test_generated_profile_sends_the_token_as_an_oauth_access_token() -> None:
    target = render_target("snowflake", GIVEN)
    assert target["authenticator"] == "oauth"
    assert target["token"] == TOKEN_REFERENCE
    assert "user" not in target and "password" not in target
    # The identity comment as the session's QUERY_TAG, cut to Snowflake's 2000 characters.
    assert target["query_tag"] == "{{ env_var('" + QUERY_COMMENT_ENV + "', '')[:2000] }}"


def test_query_tag_can_be_the_users_own_or_off() -> None:
    assert render_target("snowflake", {**GIVEN, "query_tag": "nightly"})["query_tag"] == "nightly"
    # An empty tag: dbt-snowflake sets no QUERY_TAG session parameter for it.
    assert render_target("snowflake", {**GIVEN, "query_tag": ""})["query_tag"] == ""


@pytest.mark.parametrize("field", ["account", "database", "warehouse", "schema"])
def test_required_fields(field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"`{field}` is required"):
        render_target("snowflake", {k: v for k, v in GIVEN.items() if k != field})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("token", "x", "must not be set"),
        ("password", "x", "unknown field"),
        # A client id and secret would turn the token into a refresh token (dbt-snowflake's auth_args).
        ("oauth_client_id", "x", "unknown field"),
        ("oauth_client_secret", "x", "unknown field"),
        ("private_key_path", "/k.p8", "unknown field"),
        ("authenticator", "externalbrowser", "always 'oauth'"),
    ],
)
def test_no_other_credential_can_be_configured(field: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        render_target("snowflake", {**GIVEN, field: value})


def test_role_from_the_identity_and_aliases() -> None:
    target = render_target("snowflake", {**GIVEN, "username": "SVC_DBT"}, role="TRANSFORMER")
    assert target["role"] == "TRANSFORMER" and target["user"] == "SVC_DBT"


def test_the_comment_fits_the_query_tag_with_the_default_claims() -> None:
    # Every value at the 200-character bound: the default comment still fits Snowflake's 2000 characters.
    long = "x" * 500
    run = {"dag_id": long, "run_id": long, "task_id": long, "try_number": 99, "map_index": -1}
    identity = IdentityContext(
        issuer="https://idp.example", subject=long, expires_at=datetime.now(UTC), fingerprint="sha256:0"
    )
    comment = render_query_comment(query_comment_fields(run, "model." + long, identity, QueryCommentOptions()))
    assert len(comment) <= QUERY_TAG_LIMIT


def test_spec_names_query_tag_and_the_extra() -> None:
    spec = warehouse("snowflake")
    assert spec is not None and spec.extra == "snowflake"
    assert "QUERY_TAG" in spec.labels.recorded_in and "QUERY_TEXT" in spec.labels.recorded_in
    assert namespace_of({"account": "MyOrg-Acct"}) == "snowflake://myorg-acct"


def namespace_of(target: dict[str, str]) -> str | None:
    spec = warehouse("snowflake")
    assert spec is not None and spec.namespace is not None
    return spec.namespace.of(target)
