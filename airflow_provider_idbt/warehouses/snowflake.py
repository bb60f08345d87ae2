"""Snowflake (dbt-snowflake): documented error rows and lineage naming (account names are case-insensitive)."""

from __future__ import annotations

from airflow_provider_idbt.warehouses.spec import (
    IdentityLabels,
    Namespace,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

WAREHOUSE = WarehouseSpec(
    adapter="snowflake",
    title="Snowflake",
    # 390xxx are session/auth errors; 003001 (42501) is "SQL access control error". "Object does not exist
    # or not authorized" is left to "other": Snowflake says the same for a typo.
    failures=failure_rows(
        "snowflake",
        ("auth", r"\b3901(?:00|14|18)\b|\b3903(?:03|18)\b|token (has )?expired|invalid oauth"),
        ("auth", r"incorrect username or password"),
        ("permission", r"insufficient privileges|SQL access control error|\b003001\b"),
    ),
    missing_grants=missing_grant_rows(r"insufficient privileges to operate on (\w+ '[^']+'|\w+)"),
    namespace=Namespace("snowflake", ("account",), lowercase=True),
    labels=IdentityLabels(recorded_in="`QUERY_HISTORY.QUERY_TEXT`"),
)
