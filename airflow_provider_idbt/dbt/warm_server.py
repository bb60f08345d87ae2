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
CANCEL_GRACE = 10.0


def _load_sibling(name: str) -> Any:
    # Scripts beside this one, loaded by path: this process runs in dbt's virtualenv, without the provider.
    spec = importlib.util.spec_from_file_location(f"idbt_dbt_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


warm_child = _load_sibling("warm_child")
worker = warm_child.worker
TRAILER = warm_child.TRAILER


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
    loaded: Any  # warm_child.Loaded
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
            warm_child.run_child(conn, secret_fd, request, self.loaded, [*inherited, _selector_fd(self.selector)])
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


def _check(request: dict[str, Any], loaded: Any) -> str | None:
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
    if _flag(argv, "--project-dir") != loaded.project_dir:
        return "argv's --project-dir is not the project this worker loaded"
    if request.get("manifest_sha256") != loaded.manifest_sha256:
        return "stale: the deployed manifest changed since this worker loaded it"
    return None


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


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
        loaded = warm_child.load(args, workdir)
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
