"""read_yaml: one parse per unchanged file, a fresh copy for each caller, an edited file read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from airflow_provider_idbt.dbt.yaml_files import read_yaml


def test_an_unchanged_file_gives_equal_independent_copies(tmp_path: Path) -> None:
    file = tmp_path / "dbt_project.yml"
    file.write_text("name: shop\nmodels:\n  shop:\n    +materialized: table\n")
    first = read_yaml(file)
    first["name"] = "changed by a caller"
    assert read_yaml(file) == {"name": "shop", "models": {"shop": {"+materialized": "table"}}}


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    file = tmp_path / "profiles.yml"
    file.write_text("shop:\n  target: dev\n")
    assert read_yaml(file)["shop"]["target"] == "dev"
    file.write_text("shop:\n  target: prod\n")
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert read_yaml(file)["shop"]["target"] == "prod"


def test_errors_are_those_of_a_plain_read(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_yaml(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(yaml.YAMLError):
        read_yaml(bad)
    tagged = tmp_path / "tagged.yml"
    tagged.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(yaml.YAMLError):  # a safe loader: no Python objects from YAML tags
        read_yaml(tagged)
