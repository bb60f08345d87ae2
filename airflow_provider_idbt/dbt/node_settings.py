"""Per-node task settings from a node's ``meta.idbt`` and from the DAG author's Python API (the API wins).

``meta.idbt`` is where a dbt project says who runs a model and how (another team's identity connection, a pool,
retries); ``required_groups`` / ``required_roles`` stay where the operator's pre-flight reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.dbt.permissions import GROUP_KEYS, META_KEY, ROLE_KEYS
from airflow_provider_idbt.errors import ConfigurationError

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,250}")


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{key} must be a name of letters, digits, `_`, `.` or `-`, got {value!r}")
    return value


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number >= 0, got {value!r}")
    return value


def _positive(value: Any, key: str) -> int:
    if _count(value, key) == 0:
        raise ValueError(f"{key} must be at least 1, got {value!r}")
    return int(value)


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{key} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


# Setting -> validator. Task arguments keep Airflow's names; durations are seconds (YAML has no timedelta).
TASK_SETTINGS = {
    "identity_conn_id": _name,
    "pool": _name,
    "pool_slots": _positive,
    "queue": _name,
    "retries": _count,
    "retry_delay": _seconds,
    "execution_timeout": _seconds,
    "owner": _text,
    "priority_weight": _count,
    "execution_mode": _name,
    "target": _name,
    "warehouse_role_from_identity": _flag,
}
# Read by the operator's pre-flight from the model's meta at run time, not task arguments.
PREFLIGHT_KEYS = frozenset(ROLE_KEYS + GROUP_KEYS)


def node_settings(unique_id: str, meta: Mapping[str, Any], override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated task settings of one node: ``meta.idbt`` overlaid with the API's ``override``.

    Unknown keys are refused (a typo must not silently drop a pool or an identity); the message names the node.
    """
    section = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    if section is not None and not isinstance(section, Mapping):
        raise ConfigurationError(f"{unique_id}: meta.{META_KEY} must be a mapping, got {section!r}")
    settings: dict[str, Any] = {}
    for origin, values in ((f"meta.{META_KEY}", section or {}), ("node_settings", override or {})):
        for key, value in values.items():
            if key in PREFLIGHT_KEYS:
                continue
            check = TASK_SETTINGS.get(key)
            if check is None:
                known = ", ".join(sorted([*TASK_SETTINGS, *PREFLIGHT_KEYS]))
                raise ConfigurationError(f"{unique_id}: {origin}.{key} is not a setting idbt knows; use one of {known}")
            try:
                settings[key] = check(value, f"{origin}.{key}")
            except ValueError as error:
                raise ConfigurationError(f"{unique_id}: {error}") from None
    return settings
