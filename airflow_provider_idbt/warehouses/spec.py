"""What a warehouse module declares (`WarehouseSpec`), and the environment names a profile or project reads."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR, WarehouseLogin

TOKEN_REFERENCE = "{{ env_var('" + TOKEN_ENV_VAR + "') }}"
# dbt reads `query-comment` from dbt_project.yml only and renders it lazily, per statement; the project
# reads this (non-secret) variable there, so the comment changes per task without touching the manifest,
# the vars or anything else that would make dbt re-parse the project.
QUERY_COMMENT_ENV = "IDBT_QUERY_COMMENT"
QUERY_COMMENT_REFERENCE = "{{ env_var('" + QUERY_COMMENT_ENV + "', '') }}"
# The dbt_project.yml line that puts the identity comment on every statement (a warehouse may need more).
QUERY_COMMENT_CONFIG = 'query-comment: "' + QUERY_COMMENT_REFERENCE + '"'
# A user's profiles.yml reads the warehouse role derived from the identity with this variable.
WAREHOUSE_ROLE_ENV = "IDBT_WAREHOUSE_ROLE"

__all__ = ["TOKEN_ENV_VAR", "TOKEN_REFERENCE", "WarehouseLogin"]

# "setup": the worker itself cannot run this adapter (a driver or system library is missing): no retry helps.
FailureKind = Literal["permission", "auth", "setup", "other"]
# Makes the login of one task from its token and the login fields (ProfileFields.login, or `login_args`).
LoginMaker = Callable[[FederatedToken, Mapping[str, Any]], "WarehouseLogin"]
ANY_ADAPTER = "*"


@dataclass(frozen=True)
class ProfileFields:
    """How a generated profile target is built from the fields a user gives in ``profile_args``."""

    required: tuple[str, ...]
    optional: Mapping[str, Any] = field(default_factory=dict)
    # The target field that carries the federated token; None when the adapter needs no secret.
    token_field: str | None = None
    # Other names users reach for, mapped to the field dbt expects.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # Fields the provider always sets (e.g. ``method: oauth-secrets``); a user value must equal them.
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # Fields filled per task from the dbt process's (non-secret) environment, as ``env_var()`` references.
    templated: Mapping[str, str] = field(default_factory=dict)
    # Fields the warehouse's login step reads (cluster id, region, ...); never written into profiles.yml.
    # Name -> default (None: optional without a default).
    login: Mapping[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> frozenset[str]:
        return (
            frozenset(self.required)
            | frozenset(self.optional)
            | frozenset(self.aliases)
            | frozenset(self.fixed)
            | frozenset(self.login)
        )


@dataclass(frozen=True)
class FailureRow:
    """A warehouse error text that tells what kind of failure a node hit; ``adapter="*"`` matches any."""

    adapter: str
    kind: FailureKind
    pattern: re.Pattern[str]
    # What to do about it, for "setup" rows (e.g. which system package to install).
    fix: str | None = None


def failure_rows(adapter: str, *rows: tuple[FailureKind, str] | tuple[FailureKind, str, str]) -> tuple[FailureRow, ...]:
    """Rows for one adapter from ``(kind, regex[, fix])``, matched case-insensitively; first match wins."""
    return tuple(
        FailureRow(adapter, row[0], re.compile(row[1], re.IGNORECASE), row[2] if len(row) == 3 else None)
        for row in rows
    )


@dataclass(frozen=True)
class MissingGrant:
    """Where a permission error names what is missing: the pattern's groups, joined by ``joiner``."""

    pattern: re.Pattern[str]
    joiner: str = " on "

    def find(self, message: str) -> str | None:
        found = self.pattern.search(message)
        return self.joiner.join(found.groups()) if found else None


def missing_grant_rows(*rows: str | tuple[str, str]) -> tuple[MissingGrant, ...]:
    """``regex`` or ``(regex, joiner)`` rows, matched case-insensitively."""
    return tuple(
        MissingGrant(re.compile(row, re.IGNORECASE))
        if isinstance(row, str)
        else MissingGrant(re.compile(row[0], re.IGNORECASE), row[1])
        for row in rows
    )


@dataclass(frozen=True)
class Namespace:
    """How a profile target names its OpenLineage dataset namespace (openlineage-dbt's naming)."""

    scheme: str
    # Target fields joined as ``host:port``; empty for warehouses whose namespace is the scheme alone.
    fields: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Account names are case-insensitive on some warehouses; openlineage-dbt lowercases them.
    lowercase: bool = False

    def of(self, target: Mapping[str, Any]) -> str | None:
        """The namespace of a rendered target, or None when a field it is made of is missing."""
        values = []
        for name in self.fields:
            value = target.get(name)
            if value in (None, ""):
                value = self.defaults.get(name)
            if value in (None, ""):
                return None
            values.append(str(value).lower() if self.lowercase else str(value))
        return f"{self.scheme}://{':'.join(values)}" if values else self.scheme


@dataclass(frozen=True)
class IdentityLabels:
    """How the identity shows on the warehouse side."""

    # What the warehouse records the query comment in, for the docs and `idbt doctor`.
    recorded_in: str
    # The dbt_project.yml lines that put the identity comment on every statement.
    project_config: str = QUERY_COMMENT_CONFIG
    # The comment's keys as the warehouse's own job labels, where it has them.
    job_labels: Callable[[Mapping[str, Any]], dict[str, str]] | None = None


@dataclass(frozen=True)
class RoleSetting:
    """How a warehouse role derived from the identity is set."""

    # The generated profile's field that takes the role.
    profile_field: str
    # What the adapter does with it, for messages and docs.
    effect: str


@dataclass(frozen=True)
class WarehouseSpec:
    """Everything the provider knows about one dbt adapter. One module per adapter declares one of these."""

    adapter: str
    title: str
    labels: IdentityLabels
    # The profiles.yml target users write for their own profile (``profiles_dir=``), token by env_var();
    # None where how a federated token reaches this adapter is not yet documented and tested here.
    profile_snippet: str | None = None
    # None: no generated profile (``profile_args``) yet; users bring their own profiles.yml.
    profile: ProfileFields | None = None
    # Per adapter, first match wins: transient look-alikes ("other") first, then auth, then permission.
    failures: tuple[FailureRow, ...] = ()
    missing_grants: tuple[MissingGrant, ...] = ()
    namespace: Namespace | None = None
    role: RoleSetting | None = None
    # How the secrets dbt logs in with are made from the task's token; None: the token itself is the secret.
    login: LoginMaker | None = None
    # The `pip install airflow-provider-idbt[<extra>]` that brings this adapter; None: no extra of ours.
    extra: str | None = None

    def __post_init__(self) -> None:
        strangers = {row.adapter for row in self.failures} - {self.adapter}
        if strangers:
            raise ValueError(f"warehouse {self.adapter}: failure rows of {sorted(strangers)}")


# Rows that hold for any warehouse, tried after the adapter's own.
GENERIC_FAILURES = failure_rows(
    ANY_ADAPTER,
    ("auth", r"\b401\b.{0,40}unauthori[sz]ed|authentication (failed|error)|invalid[_ ]grant"),
    ("permission", r"\b403\b.{0,40}forbidden|access denied|insufficient privileges"),
)
