"""A dbt manifest from object storage (gs://, s3://, abfs://, file://) as a local file, cached and refreshed by version.

DAG files are parsed again and again; each parse must not download the manifest. A URI is checked at most once
per ``[idbt] manifest_refresh_interval`` seconds: within one process every task group and operator shares the
answer, and across processes a metadata file beside the cached copy records when the URI was last checked. A
check asks the storage for each file's version (ETag, version id, generation, or size and modification time) and
downloads only what changed, into a temp file renamed into place, under a lock, so a parse running at the same
time reads the old copy or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.slim_index import SLIM_INDEX_FILE
from airflow_provider_idbt.errors import ConfigurationError, ManifestError, ManifestUnreachable

log = logging.getLogger(__name__)

CONFIG_SECTION = "idbt"
CACHE_DIR_KEY = "manifest_cache_dir"
INTERVAL_KEY = "manifest_refresh_interval"
DEFAULT_INTERVAL = 30.0
MANIFEST_FILE = "manifest.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# What `idbt prepare --upload` puts beside the manifest; the manifest is required, the others are copied when there.
COMPANION_FILES = (PARTIAL_PARSE_FILE, SLIM_INDEX_FILE)
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
# fsspec `info()` keys that change with the object's content, most specific first (S3, GCS, Azure, others).
_VERSION_KEYS = ("VersionId", "version_id", "generation", "ETag", "etag", "md5Hash", "content_md5")
_MTIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")

_checked: dict[tuple[str, str | None], tuple[float, Path]] = {}
_checked_lock = threading.Lock()


@dataclass(frozen=True)
class RemoteManifest:
    """Where the manifest and its companions sit in object storage, and where their cached copies go."""

    uri: str
    conn_id: str | None
    folder: Any  # ObjectStoragePath of the folder holding manifest.json
    manifest_name: str
    cache: Path

    def remote(self, name: str) -> Any:
        return self.folder / name

    def files(self) -> tuple[str, ...]:
        return (self.manifest_name, *COMPANION_FILES)


def is_remote(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names object storage (``scheme://``) rather than a local path."""
    return not isinstance(uri, os.PathLike) and "://" in str(uri)


def local_manifest(uri: str | os.PathLike[str], *, conn_id: str | None = None) -> Path:
    """The local path of the manifest at ``uri``: a local path as it is, a storage URI as a cached copy.

    ``uri`` names ``manifest.json`` or the folder holding it. For a storage URI (anything ObjectStoragePath
    takes, with ``conn_id`` as it takes it) ``partial_parse.msgpack`` and ``idbt_index.json`` are cached beside
    the manifest when they sit beside it in storage. Raises :class:`ManifestError` when the manifest is not
    there, :class:`ManifestUnreachable` (retryable) when the storage cannot be reached and nothing is cached.
    """
    if not is_remote(uri):
        path = Path(uri)
        return path / MANIFEST_FILE if path.is_dir() else path
    key = (str(uri), conn_id)
    interval = refresh_interval()
    with _checked_lock:
        seen = _checked.get(key)
        if seen is not None and time.monotonic() - seen[0] < interval and seen[1].exists():
            return seen[1]
        path = _refresh(_locate(str(uri), conn_id), interval)
        _checked[key] = (time.monotonic(), path)
        return path


def forget_checks() -> None:
    """Drop this process's record of recent checks: the next call reads the cache's metadata file again."""
    with _checked_lock:
        _checked.clear()


def refresh_interval() -> float:
    """``[idbt] manifest_refresh_interval`` in seconds (default 30): how long a check of a URI holds."""
    from airflow.configuration import conf

    raw = str(conf.get(CONFIG_SECTION, INTERVAL_KEY, fallback="") or "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigurationError(
            f"[{CONFIG_SECTION}] {INTERVAL_KEY} = {raw!r} is not a number of seconds; set it to 0 or more (default 30)"
        )
    return value


def cache_root() -> Path:
    """The private cache folder: ``[idbt] manifest_cache_dir``, else one per OS user under the temp dir (0700)."""
    from airflow.configuration import conf

    configured = str(conf.get(CONFIG_SECTION, CACHE_DIR_KEY, fallback="") or "").strip()
    root = Path(configured).expanduser() if configured else Path(tempfile.gettempdir()) / f"idbt-manifests-{_user()}"
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = root.lstat()
    except OSError as exc:
        raise ConfigurationError(
            f"manifest cache folder {str(root)!r} cannot be created ({exc.strerror or exc}); "
            f"set [{CONFIG_SECTION}] {CACHE_DIR_KEY} to a folder this user can write"
        ) from exc
    if not root.is_dir() or root.is_symlink() or info.st_uid != os.getuid():
        raise ConfigurationError(
            f"manifest cache folder {str(root)!r} is not a folder owned by this user; remove it or set "
            f"[{CONFIG_SECTION}] {CACHE_DIR_KEY} to a private folder"
        )
    if info.st_mode & 0o077:
        os.chmod(root, 0o700)
    return root


def _user() -> str:
    return str(os.getuid())


def _locate(uri: str, conn_id: str | None) -> RemoteManifest:
    from airflow.sdk import ObjectStoragePath

    try:
        path = ObjectStoragePath(uri, conn_id=conn_id)
    except (ValueError, TypeError, ImportError) as exc:
        raise ConfigurationError(f"manifest URI {uri!r} cannot be opened through ObjectStoragePath: {exc}") from exc
    name = path.name if path.name.endswith(".json") else MANIFEST_FILE
    folder = path.parent if path.name.endswith(".json") else path
    digest = hashlib.sha256(f"{conn_id or ''}\n{uri.rstrip('/')}".encode()).hexdigest()[:32]
    cache = cache_root() / digest
    cache.mkdir(mode=0o700, exist_ok=True)
    return RemoteManifest(uri=uri, conn_id=conn_id, folder=folder, manifest_name=name, cache=cache)


def _refresh(target: RemoteManifest, interval: float) -> Path:
    local = target.cache / MANIFEST_FILE
    state = _read_state(target.cache)
    if _fresh(state, interval) and local.exists():
        return local
    with _locked(target.cache):
        # Another process may have refreshed while this one waited for the lock.
        state = _read_state(target.cache)
        if _fresh(state, interval) and local.exists():
            return local
        now = time.time()
        try:
            versions = _remote_versions(target)
        except ManifestError:
            raise
        except Exception as exc:  # fsspec backends raise their SDK's own errors for an outage
            return _serve_stale(target, state, now, exc)
        known: Mapping[str, Any] = state.get("versions") or {}
        for name, version in versions.items():
            destination = target.cache / (MANIFEST_FILE if name == target.manifest_name else name)
            if version is None:
                destination.unlink(missing_ok=True)
            elif version != known.get(name) or not destination.exists():
                try:
                    _download(target.remote(name), destination)
                except FileNotFoundError:
                    # Deleted between the check and the download: the next check sees what is there.
                    versions[name] = None
                except Exception as exc:
                    return _serve_stale(target, state, now, exc)
                log.info("idbt: downloaded %s from %s", name, target.uri)
        _write_state(target.cache, {"uri": target.uri, "checked_at": now, "verified_at": now, "versions": versions})
        return local


def _remote_versions(target: RemoteManifest) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in target.files():
        remote = target.remote(name)
        try:
            fs = remote.fs
            fs.invalidate_cache(remote.path)
            info = fs.info(remote.path)
        except FileNotFoundError:
            if name == target.manifest_name:
                raise ManifestError(
                    f"no dbt manifest at {_display(target, name)}: run `idbt prepare --project-dir DIR --upload "
                    f"{target.uri}` in CI or the image build, or upload the project's target/ folder there"
                ) from None
            versions[name] = None
            continue
        except PermissionError as exc:
            raise ManifestError(
                f"the manifest at {_display(target, name)} cannot be read with connection "
                f"{target.conn_id or '(default)'!r} ({exc}); grant it read access to that path"
            ) from None
        if name == target.manifest_name and info.get("type") == "directory":
            raise ManifestError(f"{_display(target, name)} is a folder; name manifest.json or the folder holding it")
        versions[name] = version_of(info)
    return versions


def version_of(info: Mapping[str, Any]) -> str:
    """What identifies one version of an object, from fsspec's ``info()``: its version id, ETag or size+mtime."""
    for key in _VERSION_KEYS:
        value = info.get(key)
        if value:
            return f"{key}={value}"
    mtime = next((info[key] for key in _MTIME_KEYS if info.get(key)), "")
    return f"size={info.get('size')};mtime={mtime}"


def _download(remote: Any, destination: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(fd)
    try:
        # get_file streams the object in one request (s3fs, gcsfs, adlfs); reading through open() would
        # issue one ranged request per block.
        remote.fs.get_file(remote.path, tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _serve_stale(target: RemoteManifest, state: Mapping[str, Any], now: float, exc: BaseException) -> Path:
    local = target.cache / MANIFEST_FILE
    reason = f"{type(exc).__name__}: {exc}".strip()[:300]
    if not local.exists():
        raise ManifestUnreachable(
            f"the manifest storage at {target.uri} cannot be reached ({reason}) and there is no cached copy yet; "
            "check the network and the connection (a task retries; a DAG file parses again on its next parse)"
        ) from None
    verified = float(state.get("verified_at") or local.stat().st_mtime)
    log.warning(
        "idbt: manifest storage %s is unreachable (%s); using the cached copy, last verified %.0f s ago",
        target.uri,
        reason,
        max(0.0, now - verified),
    )
    _write_state(target.cache, {**state, "uri": target.uri, "checked_at": now, "verified_at": verified})
    return local


def _display(target: RemoteManifest, name: str) -> str:
    return target.uri if target.uri.rstrip("/").endswith(name) else f"{target.uri.rstrip('/')}/{name}"


def _fresh(state: Mapping[str, Any], interval: float) -> bool:
    checked = state.get("checked_at")
    return isinstance(checked, int | float) and 0 <= time.time() - checked < interval


def _read_state(cache: Path) -> dict[str, Any]:
    try:
        state = json.loads((cache / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(cache: Path, state: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=cache)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(dict(state), out)
        os.replace(tmp, cache / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    with open(cache / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
