"""MkDocs hook: the `idbt` command's reference page shows the command's own `--help`, run when the site is built.

A marker line `<!-- idbt-help COMMAND -->` (or `<!-- idbt-help -->` for the top level) in docs/reference/cli.md
becomes that command's help text, so the page cannot drift from the argument parser. A command that fails to
print its help fails the build.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

PAGE = "reference/cli.md"
_MARKER = re.compile(r"^<!-- idbt-help(?: (?P<command>[a-z-]+))? -->$", re.MULTILINE)


def command_help(command: str | None) -> str:
    """`idbt [COMMAND] --help` as a user sees it, wrapped at a fixed width so builds are reproducible."""
    argv = [sys.executable, "-m", "airflow_provider_idbt.commands.cli", *([command] if command else []), "--help"]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=120, env={**os.environ, "COLUMNS": "80"}
    )
    return done.stdout


def _block(match: re.Match[str]) -> str:
    command = match["command"]
    shown = f"idbt {command} --help" if command else "idbt --help"
    return f"```text\n$ {shown}\n{command_help(command).rstrip()}\n```"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return _MARKER.sub(_block, markdown)
