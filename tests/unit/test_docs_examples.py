"""The docs show only code that runs: every ```python block of README.md and docs/ is found, line for line
(indentation aside), in a DAG file a test module names (dags/, tests/e2e/dags/, tests/docs_dags/) or in a test
module itself; a page that includes a file (``--8<-- "path"``) includes one of those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
DAG_FILES = sorted(
    [
        *(REPO / "dags").glob("*.py"),
        *(REPO / "tests" / "e2e" / "dags").glob("*.py"),
        *(REPO / "tests" / "docs_dags").glob("*.py"),
    ]
)
TEST_MODULES = sorted((REPO / "tests").rglob("test_*.py"))
# A fence may be indented (a block inside a list item); its lines keep that indentation.
_PYTHON_BLOCK = re.compile(r"^(?P<indent>[ \t]*)```python\n(?P<body>.*?)^(?P=indent)```", re.DOTALL | re.MULTILINE)
_SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"\s*$')


def python_blocks(markdown: str) -> list[str]:
    return [match.group("body") for match in _PYTHON_BLOCK.finditer(markdown)]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def found_in(block: str, source: str) -> bool:
    """Whether ``block``'s lines are a run of consecutive lines of ``source``, each compared without indentation."""
    wanted, lines = _lines(block), _lines(source)
    return bool(wanted) and any(lines[i : i + len(wanted)] == wanted for i in range(len(lines) - len(wanted) + 1))


def _tests_text() -> str:
    return "\n".join(path.read_text() for path in TEST_MODULES if path != Path(__file__))


def _source_of(block: str) -> Path | None:
    return next((path for path in [*DAG_FILES, *TEST_MODULES] if found_in(block, path.read_text())), None)


def _included(block: str) -> Path | None:
    """The file a block includes whole (pymdownx snippets), or None when the block is code of its own."""
    lines = [line for line in _lines(block) if line]
    match = _SNIPPET.match(lines[0]) if len(lines) == 1 else None
    return REPO / match.group("path") if match else None


BLOCKS = [(page, block) for page in PAGES for block in python_blocks(page.read_text())]


def _id(page: Path, block: str) -> str:
    return f"{page.relative_to(REPO)}:{block.strip().splitlines()[0][:40]}"


def test_the_docs_have_their_examples() -> None:
    pages = {page for page, _ in BLOCKS}
    assert len(BLOCKS) >= 25 and REPO / "README.md" in pages and REPO / "docs" / "authoring.md" in pages


@pytest.mark.parametrize(("page", "block"), BLOCKS, ids=[_id(page, block) for page, block in BLOCKS])
def test_each_example_is_code_a_test_runs(page: Path, block: str) -> None:
    where = page.relative_to(REPO)
    included = _included(block)
    if included is not None:
        assert included in DAG_FILES, f"{where} includes {included}, which is not a DAG file of the repository"
        source: Path | None = included
    else:
        source = _source_of(block)
        assert source is not None, f"this example of {where} is in no DAG file or test module:\n{block}"
    if source in DAG_FILES:
        assert source.name in _tests_text(), f"{source.relative_to(REPO)} is a DAG file no test module names"


def test_indented_fences_are_read() -> None:
    page = "1. a step\n\n   ```python\n   x = 1\n   ```\n\n```python\ny = 2\n```\n"
    assert [block.strip() for block in python_blocks(page)] == ["x = 1", "y = 2"]


def test_an_edited_example_is_not_found() -> None:
    block = next(block for _, block in BLOCKS if 'select="+tag:nightly"' in block)
    assert found_in(block, _source_of(block).read_text())  # type: ignore[union-attr]
    edited = block.replace('select="+tag:nightly"', 'select="tag:nightly"')
    assert edited != block and _source_of(edited) is None
    lines = block.splitlines()
    assert _source_of("\n".join(lines[:3] + lines[4:])) is None  # a line left out
    assert not found_in("", "anything")
