"""dbt_project.yml and profiles.yml, read once per process while unchanged, with libyaml's loader where present.

A DAG file's parse reads them for every task group (the project's name, the profile's adapter and namespace);
PyYAML's pure-Python loader made that a measurable part of building a large group (docs/performance.md). The
cache is keyed by path, modification time and size, so an edited file is read again, and callers get their own
copy of the data.
"""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_cache: dict[tuple[str, int, int], Any] = {}
_lock = threading.Lock()


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The parsed content of the YAML file at ``path``; raises OSError or yaml.YAMLError like a plain read."""
    file = Path(path)
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _cache:
            return copy.deepcopy(_cache[key])
    data = yaml.load(file.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 - a safe loader
    with _lock:
        _cache[key] = data
    return copy.deepcopy(data)
