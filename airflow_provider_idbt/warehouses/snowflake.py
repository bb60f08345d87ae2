"""Snowflake (dbt-snowflake): the token is an External OAuth access token (`authenticator: oauth`); roles with
`role`; the identity in `QUERY_TAG` as well as in the query comment; documented error rows."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import (
    QUERY_COMMENT_ENV,
    IdentityLabels,
    Namespace,
    ProfileFields,
    RoleSetting,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

# Snowflake keeps QUERY_TAG to 2000 characters. The comment's values are bounded (200 characters each), but
# with groups or attributes it can grow past that, so the tag takes its first 2000 (the whole comment is in
# QUERY_TEXT anyway). A per-task tag is a connection field dbt counts in its partial-parse check, so
# `query_tag: ""` in profile_args turns it off where a full parse per task costs more than it is worth.
QUERY_TAG_LIMIT = 2000
QUERY_TAG_REFERENCE = "{{ env_var('" + QUERY_COMMENT_ENV + "', '')[:" + str(QUERY_TAG_LIMIT) + "] }}"

PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: snowflake
      account: myorg-myaccount
      # External OAuth: an access token, no client id/secret (those would make it a refresh token)
      authenticator: oauth
      token: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"
      database: analytics
      warehouse: transforming
      schema: marts
      # with warehouse_role_from_identity=True; empty means the token's (or the user's) default role
      role: "{{ env_var('IDBT_WAREHOUSE_ROLE', '') }}"
      # the task's identity in QUERY_HISTORY.QUERY_TAG (Snowflake keeps 2000 characters)
      query_tag: "{{ env_var('IDBT_QUERY_COMMENT', '')[:2000] }}"
      connect_retries: 0
      threads: 1
"""

WAREHOUSE = WarehouseSpec(
    adapter="snowflake",
    title="Snowflake",
    profile=ProfileFields(
        # With `authenticator: oauth` Snowflake takes the user from the token (the security integration's
        # user mapping claim); `user` is only checked against it.
        required=("account", "database", "warehouse", "schema"),
        optional={
            "user": None,
            "role": None,
            "threads": 1,
            "query_tag": QUERY_TAG_REFERENCE,
            # Private link or a stand-in server; dbt-snowflake builds <account>.snowflakecomputing.com otherwise.
            "host": None,
            "port": None,
            "protocol": None,
            "proxy_host": None,
            "proxy_port": None,
            # A login the token cannot pass is not retried by dbt-snowflake (only network errors are).
            "connect_retries": None,
            "connect_timeout": None,
            "retry_on_database_errors": None,
            "retry_all": None,
            "client_session_keep_alive": None,
            "reuse_connections": None,
            "s3_stage_vpce_dns_name": None,
        },
        token_field="token",
        aliases={"username": "user", "login": "user", "dbname": "database"},
        # dbt-snowflake 1.x passes `token` as an access token with `authenticator: oauth` unless an OAuth client
        # id and secret are set; neither is an accepted field here.
        fixed={"authenticator": "oauth"},
    ),
    profile_snippet=PROFILE_SNIPPET,
    # 390xxx are login errors (the session never opened, so the operator may refresh the token once);
    # 003001 (42501) is "SQL access control error". A role the login may not use is a permission verdict:
    # a fresh token carries the same grants. "Object does not exist or not authorized" is left to "other":
    # Snowflake says the same for a typo.
    failures=failure_rows(
        "snowflake",
        (
            "permission",
            r"is not granted to this user|specified in the connect string does not exist or not authorized"
            r"|is not listed in the access token",
        ),
        ("auth", r"\b3901(?:00|14|18)\b|\b3903(?:03|09|18)\b|token (has )?expired|invalid oauth"),
        ("auth", r"incorrect username or password|differs from the user tied to the access token"),
        ("permission", r"insufficient privileges|SQL access control error|\b003001\b"),
    ),
    missing_grants=missing_grant_rows(
        r"insufficient privileges to operate on (\w+ '[^']+'|\w+)",
        (r"(role) if none was requested in the connection,? \('([^']+)'\)", " "),
        (r"(role) '([^']+)' specified in the connect string", " "),
    ),
    namespace=Namespace("snowflake", ("account",), lowercase=True),
    labels=IdentityLabels(
        recorded_in="`QUERY_HISTORY.QUERY_TEXT` (the comment, appended) and `QUERY_HISTORY.QUERY_TAG`"
    ),
    # dbt-snowflake passes `role` to the connector: the session starts in it (External OAuth: the token's
    # scope must allow it, `session:role-any` or `session:role:<ROLE>`).
    role=RoleSetting(
        profile_field="role",
        effect="dbt-snowflake opens the session with `role` (the token's scope must allow the role)",
    ),
    extra="snowflake",
)
