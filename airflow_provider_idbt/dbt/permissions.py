"""Pre-flight permission check: a model's declared requirements against the identity's groups and mapped roles."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError, PermissionMismatch
from airflow_provider_idbt.identity.token import IdentityContext

META_KEY = "idbt"
ROLE_KEYS = ("required_roles", "required_role")
GROUP_KEYS = ("required_groups", "required_group")
# dbt-postgres runs `set role <role>` unquoted (other adapters interpolate the same way): anything but a plain
# identifier would be SQL, so only plain identifiers may become a warehouse role.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A name or a list of names, deduplicated in order; anything else is a configuration error."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) and item.strip() for item in items):
        raise ConfigurationError(f"{where} must be a name or a list of names, got {value!r}")
    return tuple(dict.fromkeys(item.strip() for item in items))


@dataclass(frozen=True)
class ModelRequirements:
    """What a model's ``meta.idbt`` demands of whoever runs it: every listed role and every listed group."""

    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], model: str) -> ModelRequirements:
        """Read ``meta.idbt.required_roles`` / ``required_groups`` (dbt merges folder-level ``+meta`` into it)."""
        section = meta.get(META_KEY) if isinstance(meta, Mapping) else None
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigurationError(f"model `{model}`: meta.{META_KEY} must be a mapping, got {section!r}")
        roles: tuple[str, ...] = ()
        groups: tuple[str, ...] = ()
        for key in ROLE_KEYS:
            roles += _names(section.get(key), f"model `{model}`: meta.{META_KEY}.{key}")
        for key in GROUP_KEYS:
            groups += _names(section.get(key), f"model `{model}`: meta.{META_KEY}.{key}")
        return cls(tuple(dict.fromkeys(roles)), tuple(dict.fromkeys(groups)))

    def __bool__(self) -> bool:
        return bool(self.roles or self.groups)


@dataclass(frozen=True)
class RoleMapping:
    """Identity groups to deployment roles, in the order the platform team declared them (first = preferred)."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "role mapping"

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | None, source: str) -> RoleMapping | None:
        """``{"group": "role"}`` or ``{"group": ["role", ...]}`` as a mapping or JSON text; empty means none."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(
                    f"{source} is not valid JSON ({exc.msg}); write it as "
                    '{"<identity group>": ["<deployment role>", ...]}'
                ) from None
        if not isinstance(value, Mapping):
            raise ConfigurationError(f'{source} must be a JSON object like {{"analysts": ["reader"]}}, got {value!r}')
        groups = {str(group): _names(roles, f"{source}: group `{group}`") for group, roles in value.items()}
        return cls(groups, source) if groups else None

    def roles_for(self, groups: Iterable[str]) -> tuple[str, ...]:
        held = set(groups)
        roles = (role for group, mapped in self.groups.items() if group in held for role in mapped)
        return tuple(dict.fromkeys(roles))


@dataclass(frozen=True)
class Access:
    """What the identity holds for this deployment, and the warehouse role it would run as."""

    groups: tuple[str, ...]
    roles: tuple[str, ...]
    warehouse_role: str | None = None

    def described(self) -> tuple[str, ...]:
        return (*(f"group:{g}" for g in self.groups), *(f"role:{r}" for r in self.roles))


def held_access(identity: IdentityContext, mapping: RoleMapping | None) -> Access:
    """Without a mapping every group counts as a role of the same name; with one, only mapped roles count."""
    roles = mapping.roles_for(identity.groups) if mapping is not None else identity.groups
    return Access(groups=identity.groups, roles=roles)


def check_access(
    model: str,
    requirements: ModelRequirements,
    identity: IdentityContext,
    mapping: RoleMapping | None,
    *,
    need_warehouse_role: bool = False,
) -> Access:
    """Return the identity's :class:`Access` to ``model`` or raise :class:`PermissionMismatch` (no retry).

    Pure and offline: it runs before any warehouse connection is opened.
    """
    access = held_access(identity, mapping)
    missing = (
        *(f"group:{g}" for g in requirements.groups if g not in access.groups),
        *(f"role:{r}" for r in requirements.roles if r not in access.roles),
    )
    required = (*(f"group:{g}" for g in requirements.groups), *(f"role:{r}" for r in requirements.roles))
    if missing:
        raise PermissionMismatch(
            f"identity `{identity.subject}` may not run model `{model}`: it lacks {', '.join(missing)} "
            f"(required: {', '.join(required)}; held: {', '.join(access.described()) or 'nothing'}"
            f"{_mapping_hint(mapping)}); grant the group at the identity provider, map it to the role, "
            "or run the model with another identity",
            model=model,
            subject=identity.subject,
            required=required,
            held=access.described(),
        )
    if not need_warehouse_role:
        return access
    role = choose_warehouse_role(requirements, access)
    if role is None:
        raise PermissionMismatch(
            f"identity `{identity.subject}` has no deployment role to run model `{model}` as (groups: "
            f"{', '.join(access.groups) or 'none'}{_mapping_hint(mapping)}); map one of its groups to a "
            "warehouse role",
            model=model,
            subject=identity.subject,
            required=tuple(f"role:{r}" for r in requirements.roles) or ("role:<any mapped role>",),
            held=access.described(),
        )
    return Access(access.groups, access.roles, role)


def choose_warehouse_role(requirements: ModelRequirements, access: Access) -> str | None:
    """The model's first required role the identity holds, else the identity's first mapped role."""
    preferred = [r for r in requirements.roles if r in access.roles] or list(access.roles)
    if not preferred:
        return None
    role = preferred[0]
    if not _IDENTIFIER.fullmatch(role):
        raise ConfigurationError(
            f"deployment role {role!r} cannot be used as a warehouse role: it must be a plain identifier "
            "(letters, digits, _ or $, at most 63 characters), since adapters put it into `SET ROLE` unquoted"
        )
    return role


def _mapping_hint(mapping: RoleMapping | None) -> str:
    return f"; roles from {mapping.source}" if mapping is not None else "; no role mapping configured"
