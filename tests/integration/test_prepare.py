"""`idbt prepare` with real dbt: the example project, a project with a local package, an upload, a broken project."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, dbt_env
from tests.fixtures.dbt_venv import dbt_venv_python

pytestmark = pytest.mark.integration

IDBT = Path(sys.executable).with_name("idbt")
PACKAGED_PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "packaged_project"
IGNORED = shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb")


def idbt_prepare(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IDBT), "prepare", "--project-dir", str(project), "--profiles-dir", str(project), *args],
        env=dbt_env({"IDBT_DUCKDB_PATH": str(project / "warehouse.duckdb")}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def step_line(output: str, step: str) -> re.Match[str] | None:
    return re.search(rf"^{re.escape(step)} \.\.\. (\d+(\.\d)?) s$", output, re.MULTILINE)


def test_prepare_writes_manifest_partial_parse_and_index_and_uploads_them(tmp_path: Path) -> None:
    project = tmp_path / "idbt_example"
    shutil.copytree(EXAMPLE_PROJECT, project, ignore=IGNORED)
    bucket = tmp_path / "bucket" / "prod"

    done = idbt_prepare(project, "--upload", f"file://{bucket}/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dbt deps" not in done.stdout  # the example project declares no packages
    assert step_line(done.stdout, "dbt parse")
    assert "Running with dbt=" in done.stdout  # dbt's own progress, passed through as it came

    target = project / "target"
    index = json.loads((target / "idbt_index.json").read_text())
    counted = re.search(r"^slim index: ([\d,]+) nodes \.\.\. \d+(\.\d)? s$", done.stdout, re.MULTILINE)
    assert counted and int(counted.group(1).replace(",", "")) == len(index["nodes"]) > 0
    assert "model.idbt_example.customer_orders" in index["nodes"]
    assert index["manifest_sha256"] == hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest()
    assert re.search(r"^upload file://\S+: 3 files, \d+\.\d MB \.\.\. \d+(\.\d)? s$", done.stdout, re.MULTILINE)
    for name in ("manifest.json", "partial_parse.msgpack", "idbt_index.json"):
        assert (bucket / name).read_bytes() == (target / name).read_bytes(), name
    assert not list(bucket.glob(".*"))  # no half-uploaded file left behind


def test_prepare_runs_deps_for_a_local_package_with_dbt_from_its_own_virtualenv(tmp_path: Path) -> None:
    project = tmp_path / "packaged"
    shutil.copytree(PACKAGED_PROJECT, project, ignore=IGNORED)
    elsewhere = tmp_path / "build"

    done = idbt_prepare(project, "--dbt", str(dbt_venv_python()), "--target-path", str(elsewhere))
    assert done.returncode == 0, done.stdout + done.stderr
    deps, parse = step_line(done.stdout, "dbt deps"), step_line(done.stdout, "dbt parse")
    assert deps and parse and deps.start() < parse.start()
    assert (project / "dbt_packages" / "idbt_helpers").exists()

    manifest = json.loads((elsewhere / "manifest.json").read_text())
    assert "macro.idbt_helpers.cents_to_units" in manifest["macros"]
    prices = manifest["nodes"]["model.idbt_packaged.prices"]
    assert prices["depends_on"]["macros"] == ["macro.idbt_helpers.cents_to_units"]
    assert (elsewhere / "partial_parse.msgpack").is_file()
    assert (elsewhere / "idbt_index.json").is_file()
    assert not (project / "target" / "manifest.json").exists()


def test_prepare_fails_with_dbts_own_error_on_a_broken_project(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    shutil.copytree(EXAMPLE_PROJECT, project, ignore=IGNORED)
    (project / "models" / "marts" / "broken.sql").write_text("select * from {{ ref('no_such_model') }}\n")
    bucket = tmp_path / "bucket"

    done = idbt_prepare(project, "--upload", f"file://{bucket}/")
    assert done.returncode != 0
    assert "`dbt parse` failed" in done.stderr
    assert "no_such_model" in done.stderr and "broken" in done.stderr  # dbt's own words: which ref, which model
    assert "slim index" not in done.stdout
    assert not bucket.exists()


def test_prepare_refuses_a_folder_that_is_not_a_dbt_project(tmp_path: Path) -> None:
    done = idbt_prepare(tmp_path)
    assert done.returncode == 2
    assert "no dbt_project.yml" in done.stderr and "--project-dir" in done.stderr
