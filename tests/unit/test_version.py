"""One version source: the built wheel's metadata, `__version__`, the provider info and the CHANGELOG agree."""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from airflow_provider_idbt import __version__
from airflow_provider_idbt.get_provider_info import get_provider_info
from tests.conftest import registry_env

REPO = Path(__file__).resolve().parents[2]


def build_wheel(outdir: Path) -> Path:
    """Build the wheel from the working tree as `make dist` does (isolated; hatchling from the package registry)."""
    completed = subprocess.run(
        [sys.executable, "-m", "build", "--installer", "uv", "--wheel", "--outdir", str(outdir), str(REPO)],
        env=registry_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (wheel,) = outdir.glob("*.whl")
    return wheel


def test_pyproject_reads_the_version_from_the_package() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"], "a static version in pyproject would be a second source"
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "airflow_provider_idbt/__init__.py"


def test_wheel_metadata_package_and_provider_info_agree(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    assert metadata["Name"] == "airflow-provider-idbt"
    assert metadata["Version"] == __version__
    assert wheel.name == f"airflow_provider_idbt-{__version__}-py3-none-any.whl"
    info = get_provider_info()
    assert info["package-name"] == metadata["Name"]
    # Airflow shows the first entry as the provider's version (`airflow providers list`).
    assert info["versions"][0] == __version__


def test_changelog_names_the_current_version_as_its_latest_release() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)
    assert releases[0] == "Unreleased"
    assert releases[1] == __version__, f"CHANGELOG's latest release is {releases[1]}, the package says {__version__}"
