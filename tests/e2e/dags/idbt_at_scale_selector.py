"""Test DAG (airflow): the nightly selection of idbt_at_scale.py as the project's YAML selector, tests after all.

The end-to-end test reads it as the DAG processor serialized it (it is not run): the same nodes as
`idbt_nightly`, and every test task after every node. docs/authoring.md quotes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ["IDBT_SCALE_PROJECT_DIR"])

with DAG("idbt_nightly_by_selector", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityTaskGroup(
        group_id="analytics",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id="idbt_prod",
        profiles_dir=PROJECT_DIR,
        selector="nightly",
        tests="after_all",
        operator_kwargs={"target": "prod", "pool": "idbt_warehouse"},
    )
