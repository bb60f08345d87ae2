"""The documentation site builds with `mkdocs build --strict` (what `make docs` runs): no warning, every page of docs/
in the nav, every link and anchor resolved, the API reference rendered from the package's docstrings."""

from __future__ import annotations

import ast
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def mkdocs_build(site: Path, config: Path = REPO / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    # From the repository root: the snippets (the example DAG, the CHANGELOG) are included by paths from there.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def first_docstring_line(module: str, cls: str) -> str:
    """From the source, without importing Airflow into the test process."""
    tree = ast.parse((REPO / "airflow_provider_idbt" / module).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return (ast.get_docstring(node) or "").splitlines()[0]


def page_text(site: Path, page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text()))


class _ConfigLoader(yaml.SafeLoader):
    """The safe loader, reading mkdocs.yml's one Python tag (the GitHub-style slugify) as nothing."""


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = mkdocs_build(out)
    warnings = [line for line in build.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert build.returncode == 0 and not warnings, build.stdout + build.stderr
    return out


def test_every_page_of_docs_is_in_the_nav(site: Path) -> None:
    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return []

    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_ConfigLoader)
    in_nav = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert in_nav == on_disk
    for page in on_disk:
        built = "" if page == "index.md" else page.removesuffix(".md").removesuffix("README").rstrip("/") + "/"
        assert (site / built / "index.html").exists(), page


def test_the_api_reference_is_rendered_from_the_docstrings(site: Path) -> None:
    operators = page_text(site, "reference/operators")
    for name in ("DbtIdentityOperator", "DbtIdentityTestOperator", "DbtIdentityHooksOperator"):
        assert name in operators
    # The first line of the class docstring and a parameter's own description, as the docstring words them.
    assert first_docstring_line("operators/dbt_identity.py", "DbtIdentityOperator") in operators
    assert "the dbt project directory." in operators
    group = page_text(site, "reference/task-group")
    assert first_docstring_line("task_group.py", "DbtIdentityTaskGroup") in group
    hooks = page_text(site, "reference/hooks")
    for name in ("OidcTokenHook", "AwsWebIdentityHook", "GoogleWorkloadIdentityHook", "AzureIdentityHook"):
        assert name in hooks
    errors = page_text(site, "reference/errors")
    assert first_docstring_line("errors.py", "PermissionMismatch") in errors
    cli = page_text(site, "reference/cli")
    assert "<!-- idbt-help" not in cli
    # The command's own --help, run when the site was built (docs/reference/cli_help.py), line for line.
    for command in ([], ["prepare"], ["warm-worker"], ["dev-idp"]):
        printed = subprocess.run(
            [sys.executable, "-m", "airflow_provider_idbt.commands.cli", *command, "--help"],
            env={**os.environ, "COLUMNS": "80"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert printed.startswith("usage: idbt")
        for line in printed.splitlines():
            assert line in cli, f"`idbt {' '.join(command)} --help` on the page lacks: {line}"


def test_the_home_page_shows_the_example_dag_file_itself(site: Path) -> None:
    home = page_text(site, "")
    assert "--8<--" not in home
    dag_file = (REPO / "dags" / "idbt_example.py").read_text()
    for line in ('dag_id="idbt_example",', 'identity_conn_id="idbt_dev",', "DbtIdentityTaskGroup("):
        assert line in dag_file and line in home
    changelog = page_text(site, "changelog")
    assert "[0.1.0] - 2026-12-03" in changelog


def test_strict_build_fails_on_a_broken_link_anchor_or_a_page_outside_the_nav(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    with (docs / "index.md").open("a") as page:
        page.write("\n[gone](no-such-page.md), [no anchor](quickstart.md#no-such-heading)\n")
    (docs / "orphan.md").write_text("# Not in the nav\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {REPO / 'mkdocs.yml'}\ndocs_dir: {docs}\n")
    build = mkdocs_build(tmp_path / "site", config)
    assert build.returncode != 0
    assert "'no-such-page.md'" in build.stderr
    assert "'#no-such-heading'" in build.stderr
    assert "orphan.md" in build.stderr
    assert "Aborted with 3 warnings in strict mode" in build.stdout + build.stderr, build.stdout + build.stderr
