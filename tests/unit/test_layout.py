"""The house rules: small modules, names that do not repeat their folder, a pure core, one room per warehouse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from airflow_provider_idbt.warehouses import all_warehouses

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_idbt"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400
# Pure Python: no Airflow import, so they can be tested and reused without Airflow.
PURE = (
    "identity",
    "warehouses",
    "dbt",
    "devidp",
    "events.py",
    "errors.py",
    "commands/audit.py",
    "ui/model_runs.py",
    "ui/query.py",
)
# Entra's resource table is keyed by Entra resource names (one is also an adapter's name), per sovereign cloud.
# The AWS database logins call the `redshift` service: an AWS API name that is also an adapter's.
ADAPTER_NAMES_ALLOWED = {"identity/azure/clouds.py", "identity/aws/database.py"}


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_module_is_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_name_does_not_repeat_its_folder(path: Path) -> None:
    """``dbt/dbt_log.py`` repeats its folder; ``identity/azure_config.py`` belongs in ``identity/azure/``."""
    prefixes = [path.parent.name.rstrip("s") + "_"] if path.parent != PACKAGE else []
    prefixes += [sub.name + "_" for sub in path.parent.iterdir() if (sub / "__init__.py").is_file()]
    assert not [prefix for prefix in prefixes if path.stem.startswith(prefix)]


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if _relative(p).startswith(PURE)], ids=_relative)
def test_pure_core_imports_no_airflow(path: Path) -> None:
    imported = _imports(ast.parse(path.read_text()))
    assert not {name for name in imported if name == "airflow" or name.startswith("airflow.")}


def _string_constants(tree: ast.AST) -> set[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if not _relative(p).startswith("warehouses/") and _relative(p) not in ADAPTER_NAMES_ALLOWED],
    ids=_relative,
)
def test_only_warehouse_modules_name_an_adapter(path: Path) -> None:
    assert not _string_constants(ast.parse(path.read_text())) & set(all_warehouses())
