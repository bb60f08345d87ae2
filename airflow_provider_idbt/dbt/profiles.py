"""dbt profiles built from the fields a warehouse module declares; the token only ever appears as ``env_var()``."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_idbt.dbt.yaml_files import read_yaml
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.warehouses import all_warehouses, warehouse
from airflow_provider_idbt.warehouses.spec import TOKEN_REFERENCE, ProfileFields


def profile_fields(adapter: str) -> ProfileFields:
    """The generated-profile mapping of ``adapter``; a clear error for an adapter that has none."""
    spec = warehouse(adapter)
    if spec is None or spec.profile is None:
        supported = sorted(name for name, spec in all_warehouses().items() if spec.profile is not None)
        raise ConfigurationError(
            f"adapter {adapter!r} has no profile mapping; supported: {', '.join(supported)} "
            "(or give profiles_dir with your own profiles.yml)"
        )
    return spec.profile


def render_target(adapter: str, fields: Mapping[str, Any], *, role: str | None = None) -> dict[str, Any]:
    """One profile target (the ``outputs.<target>`` mapping) for ``adapter`` from user-given ``fields``.

    ``role`` is the warehouse role derived from the identity; it goes where the warehouse module says.
    """
    row = profile_fields(adapter)
    if role:
        fields = {**fields, _role_field(adapter): role}
    given: dict[str, Any] = {}
    for name, value in fields.items():
        if name in row.templated and row.templated[name] == value:
            continue  # a user's own profile spelling out the per-task reference: the same target
        if row.token_field and name == row.token_field:
            raise ConfigurationError(
                f"{adapter} profile: field `{name}` must not be set; the federated token fills it per task"
            )
        if name not in row.accepted:
            raise ConfigurationError(
                f"{adapter} profile: unknown field `{name}`; accepted: {', '.join(sorted(row.accepted))}"
            )
        target = row.aliases.get(name, name)
        if target in given and given[target] != value:
            raise ConfigurationError(f"{adapter} profile: field `{target}` is given twice (as `{name}` too)")
        given[target] = value
    for name, value in row.fixed.items():
        if given.get(name, value) != value:
            raise ConfigurationError(
                f"{adapter} profile: field `{name}` is always {value!r} here (how the federated token reaches "
                f"the warehouse); remove it"
            )
    missing = [name for name in row.required if given.get(name) in (None, "")]
    if missing:
        raise ConfigurationError(f"{adapter} profile: field `{missing[0]}` is required and missing")
    output: dict[str, Any] = {"type": adapter, **row.fixed}
    for name in (*row.required, *row.optional):
        value = given.get(name, row.optional.get(name))
        if value is not None:
            output[name] = value
    output.update(row.templated)
    if row.token_field:
        output[row.token_field] = TOKEN_REFERENCE
    return output


def login_args(adapter: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a generated profile that the warehouse's login step reads, with their defaults."""
    row = profile_fields(adapter)
    named = {row.aliases.get(name, name): value for name, value in fields.items()}
    return {name: named.get(name, default) for name, default in row.login.items()}


def _role_field(adapter: str) -> str:
    spec = warehouse(adapter)
    if spec is None or spec.role is None:
        raise ConfigurationError(
            f"{adapter} profile: the warehouse has no role to set, so a role derived from the identity cannot "
            "be used; turn warehouse_role_from_identity off for this task"
        )
    return spec.role.profile_field


def render_profile(
    adapter: str, fields: Mapping[str, Any], profile_name: str, target_name: str = "idbt", *, role: str | None = None
) -> dict[str, Any]:
    """A complete profiles.yml document with one profile and one target; no secret value in it."""
    if not profile_name or not target_name:
        raise ConfigurationError("a dbt profile needs a non-empty profile name and target name")
    target = render_target(adapter, fields, role=role)
    return {profile_name: {"target": target_name, "outputs": {target_name: target}}}


def write_profiles_dir(profile: Mapping[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write ``profiles.yml`` (0600) into ``directory`` (created 0700) and return the directory for --profiles-dir.

    An existing directory must already be private: the file is small, but which identity and host a task
    uses is nobody else's business, and a group-writable directory would let others swap the file.
    """
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(f"profiles directory {folder} is accessible to others (mode {mode:o}); use 0700")
    text = yaml.safe_dump(dict(profile), sort_keys=False, default_flow_style=False)
    file = folder / "profiles.yml"
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    return folder


def declared_adapter_type(
    profiles_dir: str | os.PathLike[str],
    project_dir: str | os.PathLike[str],
    profile_name: str | None = None,
    target: str | None = None,
) -> str | None:
    """The adapter `type` a user's profiles.yml declares for this run, or None where it cannot be read plainly.

    Read without rendering: a profile whose name, target or type is templated is simply not checked,
    since rendering would need dbt and the environment of the dbt process.
    """
    try:
        profiles = read_yaml(Path(profiles_dir) / "profiles.yml") or {}
        profile = profiles[profile_name or project_profile_name(project_dir)]
        output = profile["outputs"][target or profile["target"]]
        adapter = output["type"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return adapter if isinstance(adapter, str) and "{" not in adapter else None


def project_profile_name(project_dir: str | os.PathLike[str]) -> str | None:
    """The `profile:` a dbt project names in dbt_project.yml (None when absent or unreadable)."""
    try:
        project = read_yaml(Path(project_dir) / "dbt_project.yml") or {}
    except (OSError, yaml.YAMLError):
        return None
    name = project.get("profile") if isinstance(project, dict) else None
    return name if isinstance(name, str) and name else None
