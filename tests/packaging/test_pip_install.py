"""The release artifacts as users get them: `python -m build` makes an sdist and a wheel that pass `twine check`, and
plain pip installs the wheel with the committed constraints into a fresh virtualenv, as Cloud Composer and MWAA do;
every public module of the installed package then imports, and the `idbt` command runs."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tomllib
import venv
from pathlib import Path

import pytest

from airflow_provider_idbt import __version__
from tests.conftest import registry_env

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
EXTRAS = "dbt,duckdb"

# The modules that need an extra the test does not install, each with that extra and the module whose absence
# stops its import (the other modules import their SDKs lazily, on first use). Any other module that fails to
# import fails the test, and so does a module listed here that imports without its extra (the list went stale).
NEEDS_EXTRA: dict[str, tuple[str, str]] = {
    "airflow_provider_idbt.identity.google.credentials": ("google", "google.auth"),
    "airflow_provider_idbt.identity.google.exchanger": ("google", "google.auth"),
    "airflow_provider_idbt.identity.google.transport": ("google", "google.auth"),
    "airflow_provider_idbt.operators.lineage_facets": ("openlineage", "airflow.providers.openlineage"),
}

# Run inside the fresh virtualenv: import every module of the installed package and report what failed and why.
PROBE = r"""
import importlib, json, pkgutil, sys, traceback
import airflow_provider_idbt as package

names, failed = [package.__name__], {}
def onerror(name):
    failed[name] = {"type": sys.exc_info()[0].__name__, "missing": getattr(sys.exc_info()[1], "name", None),
                    "error": traceback.format_exc(limit=-3)}
for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".", onerror=onerror):
    names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = {"type": type(exc).__name__, "missing": getattr(exc, "name", None),
                        "error": traceback.format_exc(limit=-3)}
print(json.dumps({"file": package.__file__, "version": package.__version__, "modules": names, "failed": failed}))
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from the working tree the way `make dist` builds them."""
    outdir = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--installer", "uv", "--sdist", "--wheel", "--outdir", str(outdir), str(REPO)],
        env=registry_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return outdir


def test_build_makes_an_sdist_and_a_wheel_that_pass_twine_check(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    assert names == [
        f"airflow_provider_idbt-{__version__}-py3-none-any.whl",
        f"airflow_provider_idbt-{__version__}.tar.gz",
    ]
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *(str(dist / n) for n in names)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2, check.stdout


def test_sdist_carries_the_project_and_no_local_state(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name and m.isfile()]
    parts = {part for member in members for part in member.split("/")[:-1]}
    for local in (
        ".venv",
        ".venv-3.1",
        ".venv-dbt",
        ".venv-bench",
        "node_modules",
        ".demo",
        "target",
        "logs",
        "dbt_packages",
        "site",
        "dist",
        "__pycache__",
        ".git",
    ):
        assert local not in parts, f"the sdist carries {local}/"
    assert not [m for m in members if m.endswith((".pyc", ".duckdb"))]
    for needed in (
        "PKG-INFO",
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "constraints.txt",
        "airflow_provider_idbt/__init__.py",
        "airflow_provider_idbt/dbt/worker.py",
        "dags/idbt_example.py",
    ):
        assert needed in members, f"the sdist lacks {needed}"


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel file installed by plain pip against constraints.txt."""
    env_dir = tmp_path_factory.mktemp("pip") / "venv"
    venv.create(env_dir, with_pip=True)
    (wheel,) = dist.glob("*.whl")
    env = {**registry_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(REPO / "constraints.txt"),
            f"{wheel}[{EXTRAS}]",
        ],
        env=env,
        check=True,
        timeout=900,
    )
    return env_dir


def test_every_public_module_imports_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    # Run away from the repository, so nothing resolves to the working tree.
    probe = subprocess.run(
        [str(installed / "bin" / "python"), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(str(installed)), report["file"]
    assert report["version"] == __version__
    # Every module of the source tree is in the wheel, so the walk covered the package.
    in_tree = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "airflow_provider_idbt").rglob("*.py")
    }
    assert set(report["modules"]) == in_tree
    failed = report["failed"]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    unexpected = {name: f["error"] for name, f in failed.items() if name not in NEEDS_EXTRA}
    assert not unexpected, "modules that do not import from the wheel:\n" + "\n".join(
        f"{name}:\n{error}" for name, error in unexpected.items()
    )
    for name, (extra, missing) in NEEDS_EXTRA.items():
        assert name in failed, f"{name} imports without the [{extra}] extra: remove it from NEEDS_EXTRA"
        assert failed[name]["type"] == "ModuleNotFoundError", failed[name]["error"]
        assert failed[name]["missing"] == missing, failed[name]["error"]
        assert extra in extras and extra not in EXTRAS.split(","), f"{name}: no extra [{extra}] to install"


def test_the_idbt_command_and_airflow_see_the_installed_provider(installed: Path, tmp_path: Path) -> None:
    help_text = subprocess.run(
        [str(installed / "bin" / "idbt"), "--help"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    for command in ("doctor", "audit", "prepare", "dev-idp", "demo", "warm-worker"):
        assert command in help_text
    listing = subprocess.run(
        [str(installed / "bin" / "airflow"), "providers", "list", "--output", "json"],
        env={**registry_env(), "AIRFLOW_HOME": str(tmp_path / "airflow_home")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    providers = json.loads(next(line for line in listing.splitlines() if line.startswith("[")))
    versions = {p["package_name"]: p["version"] for p in providers}
    assert versions.get("airflow-provider-idbt") == __version__
    dbt = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('dbt-duckdb'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert dbt.stdout.strip().startswith("1.")
