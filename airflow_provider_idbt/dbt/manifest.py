"""Read a dbt ``manifest.json`` once and answer what a task needs about a model, fast enough to parse DAGs."""

from __future__ import annotations

import difflib
import hashlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from airflow_provider_idbt.dbt.graph import topological_order
from airflow_provider_idbt.dbt.slim_index import FIX as _FIX
from airflow_provider_idbt.dbt.slim_index import build_slim_index, load_slim_index
from airflow_provider_idbt.dbt.yaml_files import read_yaml
from airflow_provider_idbt.errors import ManifestError, ModelNotFound, StaleManifest

_RELATION_TYPES = ("model", "seed", "snapshot")
_OTHER_TYPES = ("seed", "snapshot", "test")
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
    description: str = field(default="", hash=False, compare=False)
    # A test task's own `--select` (its tests, space-separated); None selects this node (see `selector`).
    select_override: str | None = None

    @property
    def selector(self) -> str:
        """``--select`` value matching this model only, together with :attr:`selector_exclude`.

        dbt matches a full fqn as a prefix: ``fqn:pkg.marts.orders`` also selects ``marts/orders/x.sql``
        (hence the exclude); the package intersection stops a same-named path inside another package.
        """
        if self.select_override is not None:
            return self.select_override
        return f"fqn:{'.'.join(self.fqn)},package:{self.package_name}"


def file_checksum(path: Path) -> str:
    """sha256 the way dbt computes node checksums: of the UTF-8 text with surrounding whitespace stripped."""
    text = path.read_bytes().decode("utf-8").strip()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.strip().lstrip("v").split(".")[:2])


class ManifestIndex:
    """The nodes of one ``manifest.json`` (from its slim index), indexed by unique id, ``package.name`` and name."""

    def __init__(self, path: Path, slim: Mapping[str, Any]) -> None:
        metadata = slim.get("metadata") or {}
        self.path = path
        self.dbt_version: str = str(metadata.get("dbt_version") or "")
        self.adapter_type: str = str(metadata.get("adapter_type") or "")
        self.project_name: str = str(metadata.get("project_name") or "")
        # Every enabled node and source as a plain record (slim_index.node_record), for selection and task groups.
        self.nodes: Mapping[str, Mapping[str, Any]] = slim.get("nodes") or {}
        self.selectors: Mapping[str, Any] = slim.get("selectors") or {}
        self.hooks: tuple[Mapping[str, Any], ...] = tuple(slim.get("hooks") or ())
        nodes = self.nodes
        relations: dict[str, str | None] = {}
        ephemeral_parents: dict[str, tuple[str, ...]] = {}
        for uid, node in nodes.items():
            if node["resource_type"] in _RELATION_TYPES or node["resource_type"] == "source":
                relations[uid] = node.get("relation")
                if node["config"].get("materialized") == "ephemeral":
                    ephemeral_parents[uid] = tuple(node["depends_on"])
        self._relations = relations
        self._ephemeral_parents = ephemeral_parents
        self._fqn_prefixes = {
            tuple(fqn[:i])
            for node in nodes.values()
            if node["resource_type"] != "source" and (fqn := node["fqn"])
            for i in range(1, len(fqn))
        }
        self._specs: dict[str, ModelSpec] = {}
        self._models = [uid for uid, node in nodes.items() if node["resource_type"] == "model"]
        # Seeds, snapshots and tests, for the operator's `seed` / `snapshot` / `build` / `test` commands.
        self._others = [uid for uid, node in nodes.items() if node["resource_type"] in _OTHER_TYPES]
        self._disabled: set[str] = {
            str(node["unique_id"]) for node in slim.get("disabled") or () if node.get("resource_type") == "model"
        }
        self._by_name: dict[str, list[str]] = {}
        for uid in self._models:
            node = nodes[uid]
            name, package, version = node["name"], node["package_name"], node.get("version")
            self._by_name.setdefault(name, []).append(uid)
            self._by_name.setdefault(f"{package}.{name}", []).append(uid)
            if version is not None:
                for key in (f"{name}.v{version}", f"{package}.{name}.v{version}"):
                    self._by_name.setdefault(key, []).append(uid)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ManifestIndex:
        """Load (or reuse) the index of a manifest file or of a target directory holding ``manifest.json``.

        Reads the slim index beside the manifest (``idbt_index.json``), building it on first use.
        """
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
        index = cls(file, load_slim_index(file))
        with _cache_lock:
            _cache[key] = index
            while len(_cache) > _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
        return index

    @classmethod
    def from_manifest(cls, path: Path, data: Mapping[str, Any]) -> ManifestIndex:
        """The index of an already parsed manifest (tests, tools); no slim index file is read or written."""
        return cls(path, build_slim_index(data))

    def spec(self, unique_id: str) -> ModelSpec:
        """The :class:`ModelSpec` of a model, seed, snapshot or test (built once, on first use)."""
        spec = self._specs.get(unique_id)
        if spec is None:
            spec = self._specs[unique_id] = self._spec(self.nodes[unique_id])
        return spec

    def _spec(self, node: Mapping[str, Any]) -> ModelSpec:
        config = node["config"]
        parents = tuple(node["depends_on"])
        fqn = tuple(node["fqn"])
        name, value = node["checksum"]
        return ModelSpec(
            unique_id=node["unique_id"],
            name=node["name"],
            package_name=node["package_name"],
            resource_type=node["resource_type"],
            original_file_path=node["original_file_path"],
            checksum=Checksum(name, value),
            depends_on=parents,
            inputs=self._inputs(parents),
            output=node.get("relation") if node["resource_type"] in _RELATION_TYPES else None,
            materialized=str(config.get("materialized") or ""),
            meta=node["meta"],
            tags=tuple(node["tags"]),
            fqn=fqn,
            version=node.get("version"),
            selector_exclude=f"fqn:{'.'.join(fqn)}.*" if fqn in self._fqn_prefixes else None,
            description=node.get("description") or "",
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
        if ref in self.nodes and self.nodes[ref]["resource_type"] == "model":
            return self.spec(ref)
        candidates = self._by_name.get(ref, [])
        if len(candidates) > 1:
            candidates = self._narrow(candidates)
        if len(candidates) == 1:
            return self.spec(candidates[0])
        if candidates:
            ids = ", ".join(sorted(candidates))
            raise ModelNotFound(f"model {ref!r} is ambiguous in {self.path}: matches {ids}; pass a unique id")
        raise ModelNotFound(self._not_found_message(ref))

    def node(self, ref: str, resource_types: Iterable[str]) -> ModelSpec:
        """Return the model, seed, snapshot or test ``ref`` names (unique id, ``package.name`` or ``name``).

        Only nodes of ``resource_types`` count; a model keeps :meth:`model`'s rules (versions, root first).
        """
        wanted = tuple(resource_types)
        if "model" in wanted:
            try:
                return self.model(ref)
            except ModelNotFound:
                if wanted == ("model",):
                    raise
        nodes = self.nodes
        matches = [
            uid
            for uid in self._others
            if nodes[uid]["resource_type"] in wanted
            and ref in (uid, nodes[uid]["name"], f"{nodes[uid]['package_name']}.{nodes[uid]['name']}")
        ]
        root = [uid for uid in matches if nodes[uid]["package_name"] == self.project_name]
        matches = root or matches
        if len(matches) == 1:
            return self.spec(matches[0])
        kinds = " or ".join(wanted)
        if matches:
            ids = ", ".join(sorted(matches))
            raise ModelNotFound(f"{kinds} {ref!r} is ambiguous in {self.path}: matches {ids}; pass a unique id")
        names = [nodes[uid]["name"] for uid in self._others if nodes[uid]["resource_type"] in wanted]
        if "model" in wanted:
            names += list(self._by_name)
        close = difflib.get_close_matches(ref, names, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelNotFound(
            f"no {kinds} {ref!r} in the dbt manifest {self.path}{hint} If it was added recently, {_FIX}"
        )

    def _narrow(self, candidates: list[str]) -> list[str]:
        # dbt's own ref() rules: the root project shadows packages, and a versioned name means its latest.
        nodes = self.nodes
        root = [uid for uid in candidates if nodes[uid]["package_name"] == self.project_name]
        candidates = root or candidates
        latest = [
            uid
            for uid in candidates
            if nodes[uid].get("version") and nodes[uid].get("latest_version") == nodes[uid].get("version")
        ]
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
        chosen = {uid for uid in self._models if all_packages or self.nodes[uid]["package_name"] == wanted}
        return [self.spec(uid) for uid in topological_order(self.nodes, chosen)]

    def check_project(self, project_dir: str | os.PathLike[str]) -> None:
        """Raise :class:`StaleManifest` when the manifest was built for another project than ``project_dir``'s."""
        project = Path(project_dir)
        name = _project_name(project)
        if name != self.project_name:
            raise StaleManifest(
                f"the dbt manifest {self.path} was built for project {self.project_name!r} but "
                f"{project / 'dbt_project.yml'} names {name!r}; {_FIX}"
            )

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
        self.check_project(project)
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


def _ref_keys(unique_id: str) -> tuple[str, ...]:
    """The ways a user may name a model: unique id, ``package.name`` and ``name``."""
    parts = unique_id.split(".")
    if len(parts) < 3:
        return (unique_id,)
    return (unique_id, f"{parts[1]}.{parts[2]}", parts[2])


def _load_project_yaml(project: Path) -> Mapping[str, Any]:
    file = project / "dbt_project.yml"
    try:
        data = read_yaml(file)
    except (OSError, yaml.YAMLError) as exc:
        raise StaleManifest(f"cannot read {file} ({exc}); check the task's project_dir") from exc
    return data if isinstance(data, dict) else {}


def _project_name(project: Path) -> str:
    return str(_load_project_yaml(project).get("name") or "")


def _packages_dir(project: Path) -> str:
    return str(_load_project_yaml(project).get("packages-install-path") or "dbt_packages")
