"""Generated sections of a Markdown page: text between `<!-- NAME: begin ... -->` and `<!-- NAME: end -->` that
one benchmark owns and rewrites, leaving the rest of the page (and the other benchmarks' sections) as it is."""

from __future__ import annotations

import re
from pathlib import Path


def _pattern(begin: str, end: str) -> re.Pattern[str]:
    return re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)


def section_of(text: str, begin: str, end: str) -> str | None:
    """The section from ``begin`` to ``end`` (both included) in ``text``, or None."""
    found = _pattern(begin, end).search(text)
    return found.group(0) if found else None


def put_section(text: str, section: str, begin: str, end: str, *, before: str | None = None) -> str:
    """``text`` with ``section`` in place of the old one; new, it goes before the ``before`` marker or at the end."""
    pattern = _pattern(begin, end)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text)
    if before is not None and before in text:
        return text.replace(before, section + "\n\n" + before, 1)
    return text.rstrip() + "\n\n" + section


_ANY_SECTION = re.compile(r"<!-- (\S+): begin [^\n]*?-->.*?<!-- \1: end -->", re.S)


def carry_sections(previous: str, text: str) -> str:
    """``text`` (a page written anew) with every generated section of ``previous`` it lacks, in their order."""
    for found in _ANY_SECTION.finditer(previous):
        if f"<!-- {found.group(1)}: begin" not in text:
            text = text.rstrip() + "\n\n" + found.group(0)
    return text


def write_section(doc: Path, section: str, begin: str, end: str, *, title: str, before: str | None = None) -> None:
    """Write ``section`` into the page ``doc`` (created with the heading ``title`` when it does not exist)."""
    current = doc.read_text() if doc.exists() else f"# {title}\n"
    doc.write_text(put_section(current, section, begin, end, before=before).rstrip() + "\n")
