"""Read a dbt ``manifest.json`` once and answer what a task needs about a model, fast enough to parse DAGs."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from airflow_provider_idbt.errors import ManifestError, ModelNotFound, StaleManifest

_FIX = (
    "run `dbt parse` in the project (same dbt version and adapter as the tasks) and deploy the new target/manifest.json"
)
_RELATION_TYPES = ("model", "seed", "snapshot")
_CACHE_SIZE = 16


class Checksum(NamedTuple):
    """dbt's per-node file checksum: ``name`` is the algorithm (``sha256``, or ``path`` for big seeds)."""

    name: str
    value: str


@dataclass(frozen=True)
class ModelSpec:
    """One dbt model as the manifest describes it: identity, lineage and configuration, no SQL."""

    unique_id: str
    name: str
    package_name: str
    resource_type: str
    original_file_path: str
    checksum: Checksum
    depends_on: tuple[str, ...]
    inputs: tuple[str, ...]
    # None for ephemeral models: they are inlined into their children and build no relation.
    output: str | None
    materialized: str
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    tags: tuple[str, ...] = ()
    fqn: tuple[str, ...] = ()
    version: str | None = None
    # Set only when other nodes sit under this model's fqn (see `selector`); None keeps dbt's output
    # free of "selection criterion does not match" warnings, which `--warn-error` would turn into errors.
    selector_exclude: str | None = None

    @property
    def selector(self) -> str:
        """``--select`` value matching this model only, together with :attr:`selector_exclude`.

        dbt matches a full fqn as a prefix: ``fqn:pkg.marts.orders`` also selects ``marts/orders/x.sql``
        (hence the exclude); the package intersection stops a same-named path inside another package.
        """
        return f"fqn:{'.'.join(self.fqn)},package:{self.package_name}"


def file_checksum(path: Path) -> str:
    """sha256 the way dbt computes node checksums: of the UTF-8 text with surrounding whitespace stripped."""
    text = path.read_bytes().decode("utf-8").strip()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.strip().lstrip("v").split(".")[:2])


def _relation(node: Mapping[str, Any], identifier_key: str) -> str | None:
    parts = [node.get("database"), node.get("schema"), node.get(identifier_key)]
    if not node.get(identifier_key):
        return None
    return ".".join(str(p) for p in parts if p)


class ManifestIndex:
    """The models of one ``manifest.json``, indexed by unique id, ``package.name`` and name."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        metadata = data.get("metadata") or {}
        self.path = path
        self.dbt_version: str = str(metadata.get("dbt_version") or "")
        self.adapter_type: str = str(metadata.get("adapter_type") or "")
        self.project_name: str = str(metadata.get("project_name") or "")
        nodes: Mapping[str, Any] = data.get("nodes") or {}
        relations: dict[str, str | None] = {}
        ephemeral_parents: dict[str, tuple[str, ...]] = {}
        for uid, node in nodes.items():
            if node.get("resource_type") in _RELATION_TYPES:
                if (node.get("config") or {}).get("materialized") == "ephemeral":
                    relations[uid] = None
                    ephemeral_parents[uid] = tuple((node.get("depends_on") or {}).get("nodes") or ())
                else:
                    relations[uid] = _relation(node, "alias")
        for uid, source in (data.get("sources") or {}).items():
            relations[uid] = _relation(source, "identifier")
        self._relations = relations
        self._ephemeral_parents = ephemeral_parents
        self._fqn_prefixes = {
            tuple(fqn[:i]) for node in nodes.values() if (fqn := node.get("fqn")) for i in range(1, len(fqn))
        }
        self._models: dict[str, ModelSpec] = {
            uid: self._spec(node) for uid, node in nodes.items() if node.get("resource_type") == "model"
        }
        # Seeds and snapshots, for the operator's `seed` / `snapshot` / `build` commands.
        self._others: dict[str, ModelSpec] = {
            uid: self._spec(node)
            for uid, node in nodes.items()
            if node.get("resource_type") in _RELATION_TYPES and node.get("resource_type") != "model"
        }
        self._disabled: set[str] = {
            uid
            for uid, versions in (data.get("disabled") or {}).items()
            if any(n.get("resource_type") == "model" for n in versions)
        }
        self._by_name: dict[str, list[ModelSpec]] = {}
        for spec in self._models.values():
            self._by_name.setdefault(spec.name, []).append(spec)
            self._by_name.setdefault(f"{spec.package_name}.{spec.name}", []).append(spec)
            if spec.version is not None:
                versioned = f"{spec.name}.v{spec.version}"
                for key in (versioned, f"{spec.package_name}.{versioned}"):
                    self._by_name.setdefault(key, []).append(spec)
        self._latest = {
            uid: str(node.get("latest_version"))
            for uid, node in nodes.items()
            if node.get("resource_type") == "model" and node.get("latest_version") is not None
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ManifestIndex:
        """Load (or reuse) the index of a manifest file or of a target directory holding ``manifest.json``."""
        file = Path(path)
        if file.is_dir():
            file = file / "manifest.json"
        try:
            stat = file.stat()
        except OSError as exc:
            raise ManifestError(f"dbt manifest {str(file)!r} is unreadable ({exc.strerror}); {_FIX}") from exc
        key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None:
            return cached
        index = cls(file, _read_manifest(file))
        with _cache_lock:
            _cache[key] = index
            while len(_cache) > _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
        return index

    def _spec(self, node: Mapping[str, Any]) -> ModelSpec:
        config = node.get("config") or {}
        checksum = node.get("checksum") or {}
        parents = tuple((node.get("depends_on") or {}).get("nodes") or ())
        version = node.get("version")
        output = None if config.get("materialized") == "ephemeral" else _relation(node, "alias")
        fqn = tuple(node.get("fqn") or ())
        return ModelSpec(
            unique_id=node["unique_id"],
            name=node["name"],
            package_name=node["package_name"],
            resource_type=node["resource_type"],
            original_file_path=node.get("original_file_path") or "",
            checksum=Checksum(str(checksum.get("name") or "none"), str(checksum.get("checksum") or "")),
            depends_on=parents,
            inputs=self._inputs(parents),
            output=output,
            materialized=str(config.get("materialized") or ""),
            meta=node.get("meta") or config.get("meta") or {},
            tags=tuple(node.get("tags") or ()),
            fqn=fqn,
            version=None if version is None else str(version),
            selector_exclude=f"fqn:{'.'.join(fqn)}.*" if fqn in self._fqn_prefixes else None,
        )

    def _inputs(self, parents: Iterable[str]) -> tuple[str, ...]:
        # Ephemeral parents are CTEs inside the child's SQL: what the child really reads is their inputs.
        found: list[str] = []
        stack, seen = list(parents), set()
        while stack:
            uid = stack.pop(0)
            if uid in seen:
                continue
            seen.add(uid)
            if uid in self._ephemeral_parents:
                stack.extend(self._ephemeral_parents[uid])
                continue
            relation = self._relations.get(uid)
            if relation and relation not in found:
                found.append(relation)
        return tuple(found)

    def model(self, ref: str) -> ModelSpec:
        """Return the model named by unique id, ``package.name``, ``name`` (or ``name.vN``)."""
        if ref in self._models:
            return self._models[ref]
        candidates = self._by_name.get(ref, [])
        if len(candidates) > 1:
            candidates = self._narrow(ref, candidates)
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            ids = ", ".join(sorted(c.unique_id for c in candidates))
            raise ModelNotFound(f"model {ref!r} is ambiguous in {self.path}: matches {ids}; pass a unique id")
        raise ModelNotFound(self._not_found_message(ref))

    def node(self, ref: str, resource_types: Iterable[str]) -> ModelSpec:
        """Return the model, seed or snapshot ``ref`` names (unique id, ``package.name`` or ``name``).

        Only nodes of ``resource_types`` count; a model keeps :meth:`model`'s rules (versions, root first).
        """
        wanted = tuple(resource_types)
        if "model" in wanted:
            try:
                return self.model(ref)
            except ModelNotFound:
                if wanted == ("model",):
                    raise
        matches = [
            spec
            for uid, spec in self._others.items()
            if spec.resource_type in wanted and ref in (uid, spec.name, f"{spec.package_name}.{spec.name}")
        ]
        root = [spec for spec in matches if spec.package_name == self.project_name]
        matches = root or matches
        if len(matches) == 1:
            return matches[0]
        kinds = " or ".join(wanted)
        if matches:
            ids = ", ".join(sorted(spec.unique_id for spec in matches))
            raise ModelNotFound(f"{kinds} {ref!r} is ambiguous in {self.path}: matches {ids}; pass a unique id")
        names = [spec.name for spec in self._others.values() if spec.resource_type in wanted]
        if "model" in wanted:
            names += list(self._by_name)
        close = difflib.get_close_matches(ref, names, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelNotFound(
            f"no {kinds} {ref!r} in the dbt manifest {self.path}{hint} If it was added recently, {_FIX}"
        )

    def _narrow(self, ref: str, candidates: list[ModelSpec]) -> list[ModelSpec]:
        # dbt's own ref() rules: the root project shadows packages, and a versioned name means its latest.
        root = [c for c in candidates if c.package_name == self.project_name]
        candidates = root or candidates
        latest = [c for c in candidates if c.version and self._latest.get(c.unique_id) == c.version]
        return latest if len(latest) == 1 else candidates

    def _not_found_message(self, ref: str) -> str:
        disabled = sorted(uid for uid in self._disabled if ref in _ref_keys(uid))
        if disabled:
            return f"model {ref!r} is disabled in {self.path} ({', '.join(disabled)}); enable it and {_FIX}"
        keys = list(self._models) + list(self._by_name)
        close = difflib.get_close_matches(ref, keys, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"model {ref!r} is not in the dbt manifest {self.path} (project {self.project_name!r}, "
            f"{len(self._models)} models){hint} If it was added recently, {_FIX}"
        )

    def models(self, package: str | None = None, *, all_packages: bool = False) -> list[ModelSpec]:
        """Enabled models of the root project (or ``package``, or every package), parents before children."""
        wanted = package or self.project_name
        chosen = {uid: spec for uid, spec in self._models.items() if all_packages or spec.package_name == wanted}
        ordered: list[ModelSpec] = []
        state: dict[str, bool] = {}

        def visit(uid: str) -> None:
            # Iterative enough for real projects; recursion depth is the DAG's depth, not its size.
            if state.get(uid) is not None:
                return
            state[uid] = False
            for parent in sorted(chosen[uid].depends_on):
                if parent in chosen:
                    visit(parent)
            state[uid] = True
            ordered.append(chosen[uid])

        for uid in sorted(chosen):
            visit(uid)
        return ordered

    def check_fresh(
        self,
        project_dir: str | os.PathLike[str],
        spec: ModelSpec,
        *,
        adapter_type: str | None = None,
        dbt_version: str | None = None,
    ) -> None:
        """Raise :class:`StaleManifest` when the manifest no longer describes ``spec`` in ``project_dir``."""
        project = Path(project_dir)
        where = f"the dbt manifest {self.path}"
        name = _project_name(project)
        if name != self.project_name:
            raise StaleManifest(
                f"{where} was built for project {self.project_name!r} but {project / 'dbt_project.yml'} "
                f"names {name!r}; {_FIX}"
            )
        if adapter_type and adapter_type != self.adapter_type:
            raise StaleManifest(
                f"{where} was built for the {self.adapter_type!r} adapter, the task runs {adapter_type!r}; {_FIX}"
            )
        if dbt_version and _major_minor(dbt_version) != _major_minor(self.dbt_version):
            raise StaleManifest(
                f"{where} was built by dbt {self.dbt_version} but the task runs dbt {dbt_version}; {_FIX}"
            )
        self._check_file(project, spec, where)

    def _check_file(self, project: Path, spec: ModelSpec, where: str) -> None:
        if spec.checksum.name != "sha256":
            return  # dbt records a path, not a hash, for files too big to hash; nothing to compare
        if spec.resource_type not in ("model", "seed"):
            return  # a snapshot's checksum covers its block or YAML entry, not the file it sits in
        if spec.package_name == self.project_name:
            file = project / spec.original_file_path
        else:
            file = project / _packages_dir(project) / spec.package_name / spec.original_file_path
            if not file.parent.is_dir():
                return  # installed packages are pinned by `dbt deps`; only check them when laid out as usual
        try:
            current = file_checksum(file)
        except FileNotFoundError as exc:
            raise StaleManifest(f"{where} lists {spec.unique_id} at {file}, which is gone; {_FIX}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise StaleManifest(f"{spec.unique_id}: cannot read {file} to compare ({exc}); {_FIX}") from exc
        if current != spec.checksum.value:
            raise StaleManifest(
                f"{file} changed after {where} was built "
                f"(sha256 {current[:12]}… != {spec.checksum.value[:12]}…); "
                f"the task would run SQL the manifest does not describe; {_FIX}"
            )


_cache: dict[tuple[str, int, int], ManifestIndex] = {}
_cache_lock = threading.Lock()


def _read_manifest(file: Path) -> Mapping[str, Any]:
    try:
        with file.open("rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ManifestError(f"dbt manifest {str(file)!r} cannot be read as JSON ({exc}); {_FIX}") from exc
    schema = (data.get("metadata") or {}).get("dbt_schema_version", "") if isinstance(data, dict) else ""
    if "/manifest/" not in str(schema) or not isinstance(data.get("nodes"), dict):
        raise ManifestError(f"{str(file)!r} is not a dbt manifest (no manifest dbt_schema_version); {_FIX}")
    return data


def _ref_keys(unique_id: str) -> tuple[str, ...]:
    """The ways a user may name a model: unique id, ``package.name`` and ``name``."""
    parts = unique_id.split(".")
    if len(parts) < 3:
        return (unique_id,)
    return (unique_id, f"{parts[1]}.{parts[2]}", parts[2])


def _load_project_yaml(project: Path) -> Mapping[str, Any]:
    file = project / "dbt_project.yml"
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StaleManifest(f"cannot read {file} ({exc}); check the task's project_dir") from exc
    return data if isinstance(data, dict) else {}


def _project_name(project: Path) -> str:
    return str(_load_project_yaml(project).get("name") or "")


def _packages_dir(project: Path) -> str:
    return str(_load_project_yaml(project).get("packages-install-path") or "dbt_packages")
