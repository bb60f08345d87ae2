"""Dataset names in OpenLineage naming for a dbt model: namespace from the warehouse module, names from the manifest."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.manifest import ModelSpec
from airflow_provider_idbt.dbt.yaml_files import read_yaml
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.warehouses import all_warehouses, warehouse

# The same prefix dbt treats as secret: such a variable is never read to name a dataset.
_SECRET_ENV_PREFIX = "DBT_ENV_SECRET_"
FACET_NAME = "idbt_identity"
# The events' identity allowlist (IdentityContext.as_event): the query comment's claims plus the expiry.
IDENTITY_FIELDS = ("issuer", "subject", "principal", "groups", "audience", "expires_at", "fingerprint")
FACET_SCHEMA_URL = (
    "https://github.com/airflow-provider-idbt/airflow-provider-idbt/blob/main/docs/idbt_identity_facet.schema.json"
)


@dataclass(frozen=True)
class DatasetName:
    """One OpenLineage dataset: ``namespace`` (where) and ``name`` (``database.schema.table``)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class ModelLineage:
    """What one model task reads and writes, in OpenLineage naming."""

    unique_id: str
    namespace: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def datasets(self) -> tuple[list[DatasetName], list[DatasetName]]:
        """(inputs, outputs) as full dataset names; empty when the namespace is unknown."""
        if self.namespace is None:
            return [], []
        return (
            [DatasetName(self.namespace, name) for name in self.inputs],
            [DatasetName(self.namespace, name) for name in self.outputs],
        )

    def as_event(self) -> dict[str, Any]:
        """The ``model`` object of an ``idbt.event/1`` line."""
        fields: dict[str, Any] = {"unique_id": self.unique_id}
        if self.namespace is not None:
            fields["namespace"] = self.namespace
        fields["inputs"] = list(self.inputs)
        fields["outputs"] = list(self.outputs)
        return fields


def dataset_namespace(target: Mapping[str, Any]) -> str | None:
    """The dataset namespace of a rendered profile target (``{"type": "postgres", "host": ..., ...}``).

    Matches openlineage-dbt (``dbt-ol``), so the datasets of a task and of a ``dbt-ol run`` are the same
    nodes in a lineage graph. None for a warehouse without lineage naming or a target missing a field.
    """
    spec = warehouse(str(target.get("type") or ""))
    return spec.namespace.of(target) if spec is not None and spec.namespace is not None else None


def model_lineage(spec: ModelSpec, namespace: str | None) -> ModelLineage:
    """The model's inputs (its parents' relations, through ephemeral ones) and output, as dataset names.

    The manifest's relations are already ``database.schema.identifier``, which is OpenLineage's name for
    a table; an ephemeral model builds no relation, so it has no output.
    """
    outputs = (spec.output,) if spec.output else ()
    return ModelLineage(spec.unique_id, namespace, tuple(spec.inputs), outputs)


def _env_var(environ: Mapping[str, str]) -> Callable[..., str]:
    def env_var(name: str, default: str | None = None) -> str:
        if name.startswith(_SECRET_ENV_PREFIX):
            return ""  # never read a secret to name a dataset
        if name in environ:
            return environ[name]
        if default is None:
            raise KeyError(name)
        return str(default)

    return env_var


def _render(value: Any, environ: Mapping[str, str]) -> Any:
    """Render a profile value the way dbt does for the ``env_var`` parts a namespace needs; others as is."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    env.globals["env_var"] = _env_var(environ)
    return env.from_string(value).render()


def profile_target(
    profiles_dir: str | os.PathLike[str],
    project_dir: str | os.PathLike[str],
    profile_name: str | None = None,
    target: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The non-secret fields of the profile target a task runs, with ``env_var()`` rendered.

    Only the fields a namespace is made of are rendered (type, host, port, path, ...); a password or
    token field is never rendered, so no secret is read. Raises ``KeyError``/``OSError`` when the
    profile cannot be found: callers treat that as "namespace unknown".
    """
    env = os.environ if environ is None else environ
    project = read_yaml(Path(project_dir) / "dbt_project.yml") or {}
    profiles = read_yaml(Path(profiles_dir) / "profiles.yml") or {}
    profile = profiles[_render(profile_name or project["profile"], env)]
    output = profile["outputs"][_render(target or profile["target"], env)]
    wanted = {"type"} | {name for spec in all_warehouses().values() if spec.namespace for name in spec.namespace.fields}
    return {name: _render(value, env) for name, value in output.items() if name in wanted}


def identity_facet_fields(identity: IdentityContext | Mapping[str, Any]) -> dict[str, Any]:
    """The ``idbt_identity`` run facet's fields: the events' allowlisted identity claims, never a token."""
    source = identity.as_event() if isinstance(identity, IdentityContext) else identity
    return {name: source.get(name) for name in IDENTITY_FIELDS if name in source}
