"""docs/authoring.md shows only code that runs: each ```python block is found, line for line (leading indentation
aside), in a DAG file of dags/ or tests/e2e/dags/ that a test module names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "authoring.md"
DAG_FILES = sorted([*(REPO / "dags").glob("*.py"), *(REPO / "tests" / "e2e" / "dags").glob("*.py")])
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(markdown: str) -> list[str]:
    return [match.group(1) for match in _PYTHON_BLOCK.finditer(markdown)]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def found_in(block: str, source: str) -> bool:
    """Whether ``block``'s lines are a run of consecutive lines of ``source``, each compared without indentation."""
    wanted, lines = _lines(block), _lines(source)
    return bool(wanted) and any(lines[i : i + len(wanted)] == wanted for i in range(len(lines) - len(wanted) + 1))


def _source_of(block: str) -> Path | None:
    return next((path for path in DAG_FILES if found_in(block, path.read_text())), None)


def _tests_text() -> str:
    return "\n".join(path.read_text() for path in (REPO / "tests").rglob("test_*.py"))


BLOCKS = python_blocks(GUIDE.read_text())


def test_the_guide_has_its_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{n}:{b.strip().splitlines()[0][:40]}" for n, b in enumerate(BLOCKS)])
def test_each_example_is_code_of_a_dag_file_a_test_runs(block: str) -> None:
    source = _source_of(block)
    assert source is not None, f"this example of {GUIDE.name} is in no DAG file of dags/ or tests/e2e/dags/:\n{block}"
    assert source.name in _tests_text(), f"{source.relative_to(REPO)} is a DAG file no test module names"


def test_an_edited_example_is_not_found() -> None:
    block = BLOCKS[0]
    assert found_in(block, _source_of(block).read_text())  # type: ignore[union-attr]
    edited = block.replace('select="+tag:nightly"', 'select="tag:nightly"')
    assert edited != block and _source_of(edited) is None
    lines = block.splitlines()
    assert _source_of("\n".join(lines[:3] + lines[4:])) is None  # a line left out
    assert not found_in("", "anything")
