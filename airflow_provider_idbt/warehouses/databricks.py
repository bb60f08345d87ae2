"""Databricks (dbt-databricks): the token as the bearer (`token`), the identity as query tags, Unity Catalog rows."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import (
    QUERY_COMMENT_CONFIG,
    QUERY_COMMENT_ENV,
    IdentityLabels,
    Namespace,
    ProfileFields,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

# The comment's keys that become query tags. dbt-databricks 1.12 wants `query_tags` as a JSON object of
# strings (the comment has numbers), at most 128 characters each, at most 20 tags with its own four
# (`@@dbt_model_name`, ...), and it escapes `\`, `,` and `:` with a warning per value and connection.
QUERY_TAG_KEYS = ("app", "dag_id", "task_id", "run_id", "try_number", "map_index", "sub")
_TAG_MAX = 128
# Rendered by dbt when it loads the profile (per run, in the warm worker too): the comment's JSON from the
# task's non-secret environment, cut down to those keys as strings, with `\`, `,` and `:` replaced by `_`
# (the statement's comment keeps the exact values). `as_text` stops dbt turning the JSON into a mapping.
QUERY_TAGS_TEMPLATE = (
    "{%- set c = fromjson(env_var('" + QUERY_COMMENT_ENV + "', '') or '{}') or {} -%}"
    "{%- set t = {} -%}"
    "{%- for k in [" + ", ".join(f"'{key}'" for key in QUERY_TAG_KEYS) + "] if c.get(k) is not none -%}"
    "{%- do t.update({k: (c[k] | string | replace('\\\\', '_') | replace(',', '_') | replace(':', '_'))"
    f"[:{_TAG_MAX}]" + "}) -%}"
    "{%- endfor -%}"
    "{{ tojson(t) | as_text }}"
)

PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: databricks
      host: adb-1234567890123456.7.azuredatabricks.net
      http_path: /sql/1.0/warehouses/abcdef1234567890
      token: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"   # a Databricks OAuth or Entra ID access token
      catalog: main
      schema: analytics
      connect_retries: 0        # a refused token is final; idbt refreshes it and runs once more itself
      threads: 1
"""

WAREHOUSE = WarehouseSpec(
    adapter="databricks",
    title="Databricks",
    extra="databricks",
    profile=ProfileFields(
        required=("host", "http_path", "schema"),
        optional={
            "catalog": None,
            "threads": 1,
            "connect_retries": None,
            "connect_timeout": None,
            "retry_all": None,
            "session_properties": None,
            "connection_parameters": None,
            "compute": None,
        },
        token_field="token",
        aliases={"database": "catalog"},
        templated={"query_tags": QUERY_TAGS_TEMPLATE},
    ),
    profile_snippet=PROFILE_SNIPPET,
    failures=failure_rows(
        "databricks",
        ("auth", r"invalid access token|UNAUTHENTICATED|\b401\b|token (is )?expired"),
        ("permission", r"INSUFFICIENT_PERMISSIONS|PERMISSION_DENIED|user does not have \w+|\b403\b"),
    ),
    missing_grants=missing_grant_rows(r"user does not have (\w+(?: \w+)?) on (\w+ '[^']+')"),
    namespace=Namespace("databricks", ("host",)),
    labels=IdentityLabels(
        recorded_in="the query history's statement text and, in a generated profile, its query tags",
        project_config=QUERY_COMMENT_CONFIG,
    ),
)
