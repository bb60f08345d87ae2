"""The pre-commit hooks run exactly the Makefile's lint and typecheck commands, so a commit checks what CI checks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _make_commands(target: str) -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert recipe, f"no `{target}` target in the Makefile"
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    return [line.replace("$(BIN)", ".venv/bin").replace("$(wildcard bench)", "bench") for line in lines]


def test_hooks_are_the_makefile_checks() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    assert entries == [*_make_commands("lint"), *_make_commands("typecheck")]
    assert all(not hook["pass_filenames"] for repo in config["repos"] for hook in repo["hooks"])
