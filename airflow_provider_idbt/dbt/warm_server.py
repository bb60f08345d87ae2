"""The warm dbt worker: a long-lived process with dbt and one project's manifest loaded, forking a child per run.

Runs as a plain script in whichever virtualenv has dbt (stdlib + dbt only, like worker.py), started on demand by
``dbt/warm.py``. Protocol version 1, over a Unix stream socket in a private (0700) directory:

- client -> server: one JSON line ``{"v": 1, "nonce", "argv", "env", "cwd", "manifest_sha256"}`` sent together
  with one file descriptor (SCM_RIGHTS): the read end of a pipe holding the secrets line. Only the forked child
  reads that pipe, so this process never holds a token.
- server -> client: the child's stdout and stderr as dbt writes them, then one trailer line
  ``\\0idbt-warm <nonce> exit <code>`` (or ``refused <reason>``).
- the client shutting down its writing side cancels the run: SIGTERM to the child's process group (dbt cancels its
  warehouse queries), SIGKILL after a grace period.

Safe to fork because this process stays single-threaded, opens no warehouse connection (its parse and warm-up
select no node) and holds no lock between requests. Each child starts from the environment the request carries
(never this process's), runs one dbt command with the pre-loaded manifest and leaves with ``os._exit``.
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts this file's directory first on sys.path; see worker.py.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse
import atexit
import hashlib
import importlib.util
import json
import selectors
import shutil
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOL = 1
MAX_REQUEST = 1 << 20
COMMANDS = frozenset({"run", "build", "test", "seed", "snapshot"})
TRAILER = "\0idbt-warm"
CANCEL_GRACE = 10.0
PLACEHOLDER = "idbt-warm-placeholder"  # a secret's stand-in while this process parses; never a credential


def _load_worker() -> Any:
    # The child-side helpers (secrets line, non-dumpable, dbt's verdict) are worker.py's: one copy of each.
    spec = importlib.util.spec_from_file_location("idbt_dbt_worker", Path(__file__).with_name("worker.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


def manifest_digest(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Loaded:
    """dbt with one project's manifest in memory, and which deployed manifest.json it stands for."""

    manifest: Any
    manifest_sha256: str


def load(args: argparse.Namespace, workdir: Path) -> Loaded:
    """Import dbt, parse the project once (seeded from the deployed partial parse) and warm dbt's code paths up.

    dbt checks the partial parse against the project as it does for any parse; the digest of the deployed
    manifest.json ties this process to the manifest the operator checked, since a pre-loaded manifest skips
    dbt's own staleness checks in every run.
    """
    from dbt.cli.main import dbtRunner

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
    return Loaded(manifest, digest)


def _reset_process_state() -> None:
    """dbt's process-wide caches that a run fills and the next one must not inherit."""
    from dbt.deprecations import reset_deprecations
    from dbt.utils.artifact_upload import PRODUCED_ARTIFACTS_PATHS
    from dbt_common.events.functions import reset_metadata_vars

    reset_metadata_vars()
    reset_deprecations()
    PRODUCED_ARTIFACTS_PATHS.clear()


@dataclass
class Run:
    conn: socket.socket
    nonce: str
    pid: int
    pidfd: int
    kill_at: float | None = None
    watching: bool = True  # the client's side of conn is watched for a cancel until it is shut


@dataclass
class Server:
    listener: socket.socket
    loaded: Loaded
    idle_timeout: float
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    runs: dict[int, Run] = field(default_factory=dict)
    draining: bool = False

    def serve(self) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        idle_since = time.monotonic()
        while self.runs or not self.draining:
            deadlines = [run.kill_at for run in self.runs.values() if run.kill_at is not None]
            wait = min(deadlines, default=idle_since + self.idle_timeout) - time.monotonic()
            for key, _ in self.selector.select(timeout=max(wait, 0.0)):
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    self.handle(conn)
                elif key.data[0] == "exit":
                    self.reap(key.data[1])
                else:
                    self.cancel(key.data[1])
            now = time.monotonic()
            for run in self.runs.values():
                if run.kill_at is not None and now >= run.kill_at:
                    _signal_group(run.pid, signal.SIGKILL)
                    run.kill_at = None
            if self.runs:
                idle_since = now
            elif now - idle_since >= self.idle_timeout:
                break

    def handle(self, conn: socket.socket) -> None:
        secret_fd: int | None = None
        try:
            if not _same_user(conn):
                conn.close()
                return
            request, secret_fd = _read_request(conn)
            nonce = str(request.get("nonce", ""))
            problem = _check(request, self.loaded)
            if problem is not None:
                print(f"idbt warm worker: refused a run: {problem}", file=sys.stderr, flush=True)
                if problem.startswith("stale"):
                    self.stop_accepting()  # the deployed manifest changed: a new worker loads the new one
                conn.sendall(f"{TRAILER} {nonce} refused {problem}\n".encode())
                conn.close()
                return
            self.start(conn, nonce, request, secret_fd)
        except (OSError, ValueError) as exc:
            print(f"idbt warm worker: bad request: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            try:
                conn.sendall(f"{TRAILER} - refused bad request: {exc}\n".encode())
            except OSError:
                pass
            conn.close()
        finally:
            if secret_fd is not None:
                os.close(secret_fd)

    def start(self, conn: socket.socket, nonce: str, request: dict[str, Any], secret_fd: int) -> None:
        inherited = [*(r.conn.fileno() for r in self.runs.values()), *self.runs]
        if not self.draining:
            inherited.append(self.listener.fileno())
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(conn, secret_fd, request, self.loaded, [*inherited, _selector_fd(self.selector)])
        pidfd = os.pidfd_open(pid)
        self.runs[pidfd] = Run(conn, nonce, pid, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pidfd))
        self.selector.register(conn, selectors.EVENT_READ, ("cancel", pidfd))

    def reap(self, pidfd: int) -> None:
        run = self.runs.pop(pidfd)
        self.selector.unregister(pidfd)
        if run.watching:
            self.selector.unregister(run.conn)
        os.close(pidfd)
        _, status = os.waitpid(run.pid, 0)
        try:
            run.conn.sendall(f"{TRAILER} {run.nonce} exit {os.waitstatus_to_exitcode(status)}\n".encode())
        except OSError:
            pass  # the client is gone; the run is over either way
        run.conn.close()

    def cancel(self, pidfd: int) -> None:
        run = self.runs[pidfd]
        try:
            data = run.conn.recv(1024)
        except OSError:
            data = b""
        if run.kill_at is None:
            # The client shut its side (task killed) or broke the protocol: stop dbt either way.
            _signal_group(run.pid, signal.SIGTERM)
            run.kill_at = time.monotonic() + CANCEL_GRACE
        if not data:  # shut: nothing more will come, stop watching (the trailer still goes out)
            self.selector.unregister(run.conn)
            run.watching = False

    def stop_accepting(self) -> None:
        if not self.draining:
            self.draining = True
            self.selector.unregister(self.listener)
            _unlink_socket(self.listener)  # before the client hears "stale", so it reconnects to a new worker
            self.listener.close()


def _child(conn: socket.socket, secret_fd: int, request: dict[str, Any], loaded: Loaded, close: list[int]) -> None:
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
        from dbt.cli.main import dbtRunner

        code = worker.verdict(dbtRunner(manifest=loaded.manifest).invoke(request["argv"]), secrets)
    except BaseException as exc:  # the child must never return into the server's loop
        print(f"idbt warm worker: {worker.scrub(f'{type(exc).__name__}: {exc}', secrets)}", file=sys.stderr)
    finally:
        try:
            atexit._run_exitfuncs()  # adapters close their databases there; os._exit would skip it
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], int]:
    conn.settimeout(10)
    data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
    try:
        while not data.endswith(b"\n"):
            if len(data) > MAX_REQUEST:
                raise ValueError(f"request larger than {MAX_REQUEST} bytes")
            more = conn.recv(65536)
            if not more:
                raise ValueError("request ended before its newline")
            data += more
        if len(fds) != 1:
            raise ValueError("request carries no secrets pipe")
        request = json.loads(data)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    conn.settimeout(None)
    if not isinstance(request, dict):
        raise ValueError("request is not a JSON object")
    return request, fds[0]


def _check(request: dict[str, Any], loaded: Loaded) -> str | None:
    """Why a request cannot run here (None when it can)."""
    if request.get("v") != PROTOCOL:
        return f"protocol {request.get('v')!r} (this worker speaks {PROTOCOL})"
    argv, env, cwd = request.get("argv"), request.get("env"), request.get("cwd")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or argv[0] not in COMMANDS:
        return "argv must be a dbt command (run, build, test, seed, snapshot) and its string arguments"
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return "env must map names to strings"
    if any(name.startswith(worker.SECRET_PREFIX) for name in env):
        return "secrets travel in the secrets pipe, not in env"
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        return "cwd must be an existing absolute directory"
    if request.get("manifest_sha256") != loaded.manifest_sha256:
        return "stale: the deployed manifest changed since this worker loaded it"
    return None


def _same_user(conn: socket.socket) -> bool:
    # Same-user peers only. This is not authorization: any process of this user may ask for a run, as it
    # could start dbt itself (docs/security.md).
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid == os.getuid()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _selector_fd(selector: selectors.BaseSelector) -> int:
    fileno = getattr(selector, "fileno", None)
    return int(fileno()) if callable(fileno) else -1


def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def _unlink_socket(listener: socket.socket) -> None:
    try:
        os.unlink(listener.getsockname())
    except OSError:
        pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="warm_server.py")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--profiles-dir", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--profile")
    parser.add_argument("--target")
    parser.add_argument("--vars")
    parser.add_argument("--secret-name", action="append", default=[])
    parser.add_argument("--idle-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    worker.make_undumpable()
    workdir = Path(args.socket).with_suffix(".d")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(mode=0o700)
    try:
        loaded = load(args, workdir)
        if threading.active_count() != 1:
            raise SystemExit("idbt warm worker: dbt left threads running after its parse; forking is unsafe")
        old_umask = os.umask(0o177)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(args.socket + ".new")
            listener.listen(64)
            os.replace(args.socket + ".new", args.socket)  # clients see the socket only once it listens
        finally:
            os.umask(old_umask)
        print(f"idbt warm worker: ready, pid {os.getpid()}, {args.socket}", flush=True)
        server = Server(listener, loaded, args.idle_timeout)
        server.serve()
        server.stop_accepting()
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    # Frozen or not, this process's objects need no finalising: leave without dbt's interpreter teardown.
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)
