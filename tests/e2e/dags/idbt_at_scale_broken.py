"""Test DAG (airflow) that cannot be built: copied as `idbt_broken_<case>.py`, each copy a DAG file with one mistake.

The DAG processor records each copy's error as an import error of that file, which is where a DAG author sees it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ["IDBT_SCALE_PROJECT_DIR"])
BROKEN = Path(os.environ["IDBT_SCALE_BROKEN_DIR"])
CASE = Path(__file__).stem.removeprefix("idbt_broken_")
CASES: dict[str, dict[str, Any]] = {
    "selection": {"select": "tag:no_such_tag"},
    "cycle": {"manifest_path": BROKEN / "cycle" / "manifest.json"},
    "missing": {"manifest_path": BROKEN / "missing" / "manifest.json"},
    "truncated": {"manifest_path": BROKEN / "truncated" / "manifest.json"},
    "other_project": {"project_dir": Path(os.environ["IDBT_EXAMPLE_PROJECT_DIR"])},
    # Object storage on a closed port (the test's `idbt_dead_s3` connection) and nothing cached yet.
    "unreachable": {"manifest_path": "s3://idbt-nowhere/nightly/", "manifest_conn_id": "idbt_dead_s3"},
}

with DAG(f"idbt_broken_{CASE}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityTaskGroup(
        group_id="analytics",
        **{
            "project_dir": PROJECT_DIR,
            "manifest_path": PROJECT_DIR / "target" / "manifest.json",
            "identity_conn_id": "idbt_prod",
            "profiles_dir": PROJECT_DIR,
            **CASES[CASE],
        },
    )
