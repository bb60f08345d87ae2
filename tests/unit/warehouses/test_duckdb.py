"""DuckDB's one error row; another warehouse's rows never apply to it."""

from __future__ import annotations

from airflow_provider_idbt.dbt.results import classify_message


def test_documented_message() -> None:
    message = "Permission Error: File system LocalFileSystem has been disabled by configuration"
    assert classify_message(message, "duckdb") == "permission"
    assert classify_message("permission denied for table orders", "duckdb") == "other"
