"""End to end: one DAG file with two dbt projects (two task groups, two manifests in storage, one identity).

Both manifests are built and uploaded by `idbt prepare --upload file://...` and read back through the manifest
cache, each project in its own cache folder with its own partial parse file; Airflow runs the tasks through the
executor path with supervised task processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, dbt_env, run_dbt

pytestmark = pytest.mark.e2e

AUDIENCE = "idbt-e2e"
PACKAGED_PROJECT = REPO / "tests" / "fixtures" / "packaged_project"
IDBT = str(Path(sys.executable).with_name("idbt"))


@dataclass
class TwoProjectsRun:
    outcome: DagRunOutcome
    warehouse: Path
    cache: Path
    bucket: Path


def _prepare(project: Path, uri: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [IDBT, "prepare", "--project-dir", str(project), "--profiles-dir", str(project), "--upload", uri],
        env=dbt_env(env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoProjectsRun]:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    home = tmp_path_factory.mktemp("two-projects")
    dags = home / "dags"
    dags.mkdir()
    example = copy_project(EXAMPLE_PROJECT, dags / "example_project").project_dir
    packaged = dags / "packaged_project"
    shutil.copytree(PACKAGED_PROJECT, packaged, ignore=shutil.ignore_patterns("target", "dbt_packages", "*.duckdb"))
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_two_projects.py", dags)
    # `dbt deps` links a local package into dbt_packages/; Airflow's DAG folder walk refuses the loop.
    (dags / ".airflowignore").write_text("dbt_packages\n")
    warehouse, bucket, cache = home / "warehouse.duckdb", home / "bucket", home / "manifest-cache"
    client = DevClient(
        client_id="e2e-runner",
        client_secret=os.urandom(16).hex(),
        subject="svc-e2e-runner",
        groups=("analytics",),
        audiences=(AUDIENCE,),
    )
    with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:
        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_DUCKDB_PATH": str(warehouse),
            "IDBT_EXAMPLE_PROJECT_DIR": str(example),
            "IDBT_PACKAGED_PROJECT_DIR": str(packaged),
            "IDBT_MANIFEST_BUCKET": f"file://{bucket}",
            "AIRFLOW__IDBT__MANIFEST_CACHE_DIR": str(cache),
            "AIRFLOW_CONN_IDBT_DEV": json.dumps(idp.connection(client, host=idp.issuer)),
        }
        _prepare(example, f"file://{bucket}/example/", env)
        _prepare(packaged, f"file://{bucket}/packaged/", env)
        # The builds' own target/ folders go, so the tasks can only have read the manifests from storage.
        shutil.rmtree(example / "target")
        shutil.rmtree(packaged / "target")
        run_dbt(example, "seed", "--select", "customers", env=env)
        shutil.rmtree(example / "target")
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
            outcome = airflow.run_dag("idbt_two_projects")
    yield TwoProjectsRun(outcome=outcome, warehouse=warehouse, cache=cache, bucket=bucket)


def test_both_projects_ran_their_models_from_their_own_manifests(two_projects: TwoProjectsRun) -> None:
    import duckdb

    outcome = two_projects.outcome
    assert outcome.state == "success", outcome.output[-3000:]
    ends = [e for e in outcome.events() if e["kind"] == "model_run" and e["phase"] == "end"]
    ran = {e["task_id"]: e["model"]["unique_id"] for e in ends if e["status"] == "success"}
    assert ran == {
        "example.stg_customers": "model.idbt_example.stg_customers",
        "packaged.prices": "model.idbt_packaged.prices",
        "packaged.price_report": "model.idbt_packaged.price_report",
        # The installed package's model, as `dbt run` runs it, before the root model that reads it.
        "packaged.idbt_helpers__units": "model.idbt_helpers.units",  # a package's node: <package>__<name>
    }
    starts = {e["task_id"]: e["time"] for e in outcome.events() if e["kind"] == "model_run" and e["phase"] == "start"}
    ended = {e["task_id"]: e["time"] for e in ends}
    assert ended["packaged.idbt_helpers__units"] <= starts["packaged.prices"]
    with duckdb.connect(str(two_projects.warehouse), read_only=True) as con:
        assert con.execute("select price from price_report").fetchall() == [(12.5,)]
        assert con.execute("select count(*) from stg_customers").fetchone()[0] > 0


def test_each_project_has_its_own_cached_manifest_and_partial_parse(two_projects: TwoProjectsRun) -> None:
    folders = sorted(p for p in two_projects.cache.iterdir() if p.is_dir())
    assert len(folders) == 2  # one per URI
    projects = set()
    for folder in folders:
        state = json.loads((folder / "state.json").read_text())
        source = two_projects.bucket / ("example" if state["uri"].endswith("/example/") else "packaged")
        for name in ("manifest.json", "partial_parse.msgpack", "idbt_index.json"):
            assert (folder / name).read_bytes() == (source / name).read_bytes(), (folder, name)
        projects.add(json.loads((folder / "manifest.json").read_text())["metadata"]["project_name"])
    assert projects == {"idbt_example", "idbt_packaged"}
