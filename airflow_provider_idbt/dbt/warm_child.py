"""What the warm dbt worker holds (dbt with one project loaded) and what each of its forked children does.

Loaded by path by warm_server.py in dbt's virtualenv: the standard library and dbt only.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRAILER = "\0idbt-warm"
PLACEHOLDER = "idbt-warm-placeholder"  # a secret's stand-in while the worker parses; never a credential


def _worker() -> Any:
    # worker.py's child-side helpers (secrets line, non-dumpable, dbt's verdict): one copy of each.
    name = "idbt_dbt_worker"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("worker.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


worker = _worker()


def manifest_digest(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Loaded:
    """dbt with one project's manifest in memory, and which deployed manifest.json it stands for."""

    manifest: Any
    manifest_sha256: str
    project_dir: str


def load(args: argparse.Namespace, workdir: Path) -> Loaded:
    """Import dbt, parse the project once (seeded from the deployed partial parse) and warm dbt's code paths up.

    dbt checks the partial parse against the project as it does for any parse; the digest of the deployed
    manifest.json ties this process to the manifest the operator checked, since a pre-loaded manifest skips
    dbt's own staleness checks in every run.
    """
    try:
        from dbt.cli.main import dbtRunner
    except ImportError as exc:
        raise SystemExit(f"idbt warm worker: dbt is not installed for {sys.executable}: {exc}") from None
    problem = worker.dbt_version_problem()
    if problem:
        raise SystemExit(f"idbt warm worker: {problem}")
    target = workdir / "target"
    target.mkdir(parents=True)
    partial = Path(args.manifest).with_name("partial_parse.msgpack")
    if partial.is_file():
        shutil.copyfile(partial, target / "partial_parse.msgpack")
    common = ["--project-dir", args.project_dir, "--profiles-dir", args.profiles_dir, "--log-path", str(workdir)]
    for flag in ("profile", "target", "vars"):
        if getattr(args, flag):
            common += [f"--{flag}", getattr(args, flag)]
    quiet = ["--log-level", "warn", "--no-send-anonymous-usage-stats", "--no-version-check"]
    digest = manifest_digest(args.manifest)
    # Profiles read the token with env_var(); while parsing, a stand-in lets them render without one.
    os.environ.update({name: PLACEHOLDER for name in args.secret_name})
    try:
        parsed = dbtRunner().invoke(["parse", *common, "--target-path", str(target), "--no-write-json", *quiet])
        if not parsed.success:
            raise SystemExit(f"idbt warm worker: dbt parse failed: {parsed.exception}")
        manifest: Any = parsed.result
        # A run that selects nothing opens no connection, but has dbt generate its serialisation code once
        # here instead of in every child (about 0.2 s each).
        warm = dbtRunner(manifest=manifest).invoke(
            ["run", "--select", "idbt_warm_up_selects_nothing", *common, "--target-path", str(workdir / "w"), *quiet]
        )
        if warm.exception is not None:
            raise SystemExit(f"idbt warm worker: warm-up failed: {warm.exception}")
    finally:
        for name in args.secret_name:
            os.environ.pop(name, None)
    _reset_process_state()
    return Loaded(manifest, digest, args.project_dir)


def _reset_process_state() -> None:
    """dbt's process-wide caches that a run fills and the next one must not inherit."""
    from dbt.deprecations import reset_deprecations
    from dbt.utils.artifact_upload import PRODUCED_ARTIFACTS_PATHS
    from dbt_common.events.functions import reset_metadata_vars

    reset_metadata_vars()
    reset_deprecations()
    PRODUCED_ARTIFACTS_PATHS.clear()


def run_child(conn: socket.socket, secret_fd: int, request: dict[str, Any], loaded: Loaded, close: list[int]) -> None:
    """The forked child: one dbt command with the task's environment and secrets; never returns."""
    code = worker.EXIT_ERROR
    secrets: dict[str, str] = {}
    parent = os.getppid()
    try:
        import multiprocessing.util

        # Finalizers inherited from this process (its semaphores) must not run in the child's exit.
        multiprocessing.util._finalizer_registry.clear()  # type: ignore[attr-defined]
        for fd in close:
            _close(fd)
        os.setsid()  # its own process group: a cancel reaches whatever dbt starts
        worker.die_with_parent(parent)
        signal.signal(signal.SIGTERM, worker.interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(conn.fileno(), 1)
        os.dup2(conn.fileno(), 2)
        os.close(devnull)
        os.close(conn.detach())
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        print(f"{TRAILER} {request.get('nonce', '')} child {os.getpid()}")  # for the client's pid and /proc checks
        with os.fdopen(secret_fd, encoding="utf-8") as pipe:
            secrets = worker.read_secrets(pipe.readline())
        worker.make_undumpable()
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(secrets)
        os.chdir(request["cwd"])
        # A copy of the worker's manifest (forked): dropping hooks from it for this run leaves the worker's whole.
        code = worker.verdict(worker.invoke(request["argv"], manifest=loaded.manifest), secrets)
    except BaseException as exc:  # the child must never return into the server's loop
        print(f"idbt warm worker: {worker.scrub(f'{type(exc).__name__}: {exc}', secrets)}", file=sys.stderr)
    finally:
        try:
            atexit._run_exitfuncs()  # adapters close their databases there; os._exit would skip it
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
