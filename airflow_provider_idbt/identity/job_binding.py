"""JobBinding: which DAGs, DAG tags and DAG bundles may use an identity connection, read from its extras."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from airflow_provider_idbt.errors import ConnectionFieldError, JobNotAllowed

ALLOWED_DAGS = "allowed_dags"
ALLOWED_TAGS = "allowed_tags"
ALLOWED_BUNDLES = "allowed_bundles"
# Every identity connection type accepts these; the exchangers never read them.
JOB_BINDING_KEYS = frozenset({ALLOWED_DAGS, ALLOWED_TAGS, ALLOWED_BUNDLES})
_WHAT = {ALLOWED_DAGS: "DAG ids", ALLOWED_TAGS: "DAG tags", ALLOWED_BUNDLES: "DAG bundle names"}


def _patterns(conn_id: str, extra: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    """A list of globs from a JSON list, a JSON list written as text (the UI form) or a comma-separated string.

    None when the extra is unset; an empty list or an empty entry is refused rather than read as "anyone".
    """
    value = extra.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConnectionFieldError(
                conn_id, key, "is not valid JSON", 'give a JSON list such as ["team_a_*"] or "team_a_*, team_b_*"'
            ) from None
    items: Sequence[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ConnectionFieldError(
            conn_id,
            key,
            f"is a {type(value).__name__}, not a list of {_WHAT[key]}",
            f'give a list of globs such as ["team_a_*"], or one comma-separated string; leave {key} unset to '
            "allow every DAG",
        )
    if not items:
        raise ConnectionFieldError(
            conn_id, key, "is an empty list", f"list the {_WHAT[key]} that may use this connection, or remove {key}"
        )
    patterns = []
    for item in items:
        if not isinstance(item, str):
            raise ConnectionFieldError(
                conn_id, key, f"holds {item!r}, which is not text", f"give each of the {_WHAT[key]} as a string glob"
            )
        if not item.strip():
            raise ConnectionFieldError(
                conn_id, key, "has an empty entry", "remove the empty entry (a doubled or trailing comma?)"
            )
        patterns.append(item.strip())
    return tuple(patterns)


def _any_match(values: Sequence[str], patterns: Sequence[str]) -> bool:
    # Case-sensitive, as Airflow's DAG ids and tags are.
    return any(fnmatchcase(value, pattern) for value in values for pattern in patterns)


@dataclass(frozen=True)
class JobBinding:
    """The jobs one identity connection is bound to. A field left None does not restrict; set ones must all hold.

    A guard rail: DAG authors choose DAG ids and tags, the platform chooses bundles. The warehouse's GRANTs to the
    identity stay the security boundary.
    """

    conn_id: str
    allowed_dags: tuple[str, ...] | None = None
    allowed_tags: tuple[str, ...] | None = None
    allowed_bundles: tuple[str, ...] | None = None

    @classmethod
    def from_extra(cls, conn_id: str, extra: Mapping[str, Any]) -> JobBinding:
        """Read the binding from a connection's extras; a bad value is a :class:`ConnectionFieldError`."""
        return cls(
            conn_id=conn_id,
            allowed_dags=_patterns(conn_id, extra, ALLOWED_DAGS),
            allowed_tags=_patterns(conn_id, extra, ALLOWED_TAGS),
            allowed_bundles=_patterns(conn_id, extra, ALLOWED_BUNDLES),
        )

    @property
    def restricts(self) -> bool:
        return any(p is not None for p in (self.allowed_dags, self.allowed_tags, self.allowed_bundles))

    def check(self, dag_id: str, tags: Sequence[str] = (), bundle_name: str | None = None) -> None:
        """Return if a task of ``dag_id`` (with ``tags``, from ``bundle_name``) may use the connection, else raise
        :class:`JobNotAllowed` saying who was refused, what is allowed and how to fix it."""
        tags = sorted(set(tags))
        task = f"DAG `{dag_id}` (tags: {', '.join(tags) or 'none'}; bundle: {bundle_name or 'unknown'})"
        checks: list[tuple[str, tuple[str, ...] | None, list[str], str]] = [
            (ALLOWED_DAGS, self.allowed_dags, [dag_id], f"dag:{dag_id}"),
            (ALLOWED_TAGS, self.allowed_tags, tags, "tags:" + ",".join(tags)),
            (ALLOWED_BUNDLES, self.allowed_bundles, [bundle_name] if bundle_name else [], f"bundle:{bundle_name}"),
        ]
        for key, patterns, values, held in checks:
            if patterns is None or _any_match(values, patterns):
                continue
            if key == ALLOWED_BUNDLES and not bundle_name:
                why = "the task's DAG bundle is unknown (a run outside a DAG bundle)"
            elif key == ALLOWED_TAGS:
                why = "the DAG carries none of the tags"
            elif key == ALLOWED_BUNDLES:
                why = "the DAG's bundle matches none of the patterns"
            else:
                why = "the DAG id matches none of the patterns"
            raise JobNotAllowed(
                f"connection `{self.conn_id}` is bound to other jobs: {task} was refused before any token was "
                f"minted, because {why} in its `{key}` ({', '.join(patterns)}). Ask the platform team to add "
                f"this DAG to the connection's `{key}`, or use the identity connection meant for this DAG",
                conn_id=self.conn_id,
                dag_id=dag_id,
                required=tuple(f"{key}:{pattern}" for pattern in patterns),
                held=(held,),
            )
