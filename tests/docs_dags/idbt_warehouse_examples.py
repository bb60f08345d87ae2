"""The warehouse pages' examples (docs/warehouses/*.md), one Airflow DAG per warehouse, as the pages show them.

tests/integration/test_doc_dags.py parses this file with Airflow's DagBag and loads each task's generated
profile with dbt and the adapter's own credentials class; tests/unit/test_docs_examples.py finds each page's
example here, line for line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityOperator

PROJECT = Path(os.environ.get("IDBT_EXAMPLE_PROJECT_DIR", Path(__file__).parents[2] / "dags" / "example_project"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")

# fmt: off
with DAG("idbt_doc_snowflake", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_prod",
        profile_args={"type": "snowflake", "account": "myorg-myaccount", "database": "analytics",
                      "warehouse": "transforming", "schema": "marts"},
        warehouse_role_from_identity=True,
    )

with DAG("idbt_doc_fabric", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_fabric",             # an idbt_azure connection, extra {"warehouse": "fabric"}
        profile_args={"type": "fabric", "host": "abc123xyz.datawarehouse.fabric.microsoft.com", "database": "dw",
                      "schema": "analytics", "retries": 1},
    )

with DAG("idbt_doc_postgres", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_prod",
        profile_args={"type": "postgres", "host": "db.internal", "user": "svc_dbt", "dbname": "dw",
                      "schema": "analytics", "sslmode": "verify-full"},
        warehouse_role_from_identity=True,
    )

with DAG("idbt_doc_postgres_rds", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_aws_prod",
        profile_args={"type": "postgres", "host": "dw.cluster-abc.eu-west-1.rds.amazonaws.com", "user": "dbt_orders",
                      "dbname": "dw", "schema": "analytics", "sslmode": "verify-full",
                      "iam_auth": "rds", "region": "eu-west-1"},  # login fields, never written into profiles.yml
    )

with DAG("idbt_doc_redshift", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_aws_prod",
        profile_args={"type": "redshift", "host": "analytics.abc123xyz789.eu-west-1.redshift.amazonaws.com",
                      "dbname": "dw", "schema": "analytics", "sslmode": "verify-full",
                      # login fields: read by the login step, never written into profiles.yml
                      "cluster_identifier": "analytics", "db_user": "dbt_orders", "region": "eu-west-1"},
    )

with DAG("idbt_doc_databricks", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_azure_dbx",              # conn type idbt_azure, "warehouse": "databricks"
        profile_args={"type": "databricks", "host": "adb-1234567890123456.7.azuredatabricks.net",
                      "http_path": "/sql/1.0/warehouses/abcdef1234567890", "catalog": "main", "schema": "analytics"},
    )

with DAG("idbt_doc_sqlserver", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_azure_sql",          # an idbt_azure connection, extra {"warehouse": "azure_sql"}
        profile_args={"type": "sqlserver", "server": "sql-dw.database.windows.net", "database": "dw",
                      "schema": "analytics", "retries": 1, "login_timeout": 30},
    )

with DAG("idbt_doc_bigquery", schedule=None, start_date=START, catchup=False):
    DbtIdentityOperator(
        task_id="orders",
        model="orders",
        project_dir=PROJECT,
        manifest_path=PROJECT / "target" / "manifest.json",
        identity_conn_id="idbt_gcp_prod",                 # conn type idbt_google
        profile_args={"type": "bigquery", "project": "acme-analytics", "dataset": "analytics", "location": "EU",
                      "job_execution_timeout_seconds": 600},
        dbt_python="/opt/dbt/bin/python",                 # dbt's own virtualenv, with dbt-bigquery
    )
# fmt: on
