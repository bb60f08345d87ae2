"""The warm runner: send a run to this host's warm dbt worker (started on demand), else fall back to a new process."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner, child_environment, scrub_secrets
from airflow_provider_idbt.warehouses.spec import QUERY_COMMENT_ENV

WARM_SERVER = Path(__file__).with_name("warm_server.py")
PROTOCOL = 1
TRAILER = "\0idbt-warm"
WARM_DIR_ENV = "IDBT_WARM_DIR"
_READY = re.compile(r"idbt warm worker: ready, pid (\d+), ")  # warm_server.py's line once it listens


class WarmUnavailable(Exception):
    """The warm worker cannot take this run; the message says why (the run falls back to a new process)."""


@dataclass(frozen=True)
class WarmSettings:
    """Where this host's warm workers keep their sockets, and how long one may idle or take to start."""

    directory: Path
    idle_timeout: float = 1800.0
    start_timeout: float = 120.0

    @classmethod
    def default(cls, directory: str | None = None, **kwargs: float) -> WarmSettings:
        base = directory or os.environ.get(WARM_DIR_ENV)
        if not base:
            runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
            base = os.path.join(runtime, f"idbt-warm-{os.getuid()}")
        return cls(Path(base), **kwargs)


def private_directory(path: Path) -> Path:
    """``path`` created 0700, refused unless this user owns it and nobody else may enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise WarmUnavailable(
            f"{path} must be a directory of user {os.getuid()} with mode 0700 "
            f"(it is {stat.S_IMODE(info.st_mode):o}, owner {info.st_uid})"
        )
    return path


@dataclass(frozen=True)
class WorkerSpec:
    """What one warm worker is for: the interpreter, project, deployed manifest, adapter, and what dbt fixes at
    parse time. Tasks that agree on all of it share a worker; the profiles directory is only read at its start."""

    python: str
    project_dir: str
    profiles_dir: str
    manifest_path: str
    adapter: str | None
    profile_name: str | None = None
    target: str | None = None
    vars: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, invocation: DbtInvocation, manifest_path: str, adapter: str | None) -> WorkerSpec:
        return cls(
            python=invocation.python,
            project_dir=os.path.abspath(invocation.project_dir),
            profiles_dir=os.path.abspath(invocation.profiles_dir),
            manifest_path=os.path.abspath(manifest_path),
            adapter=adapter,
            profile_name=invocation.profile_name,
            target=invocation.target,
            vars=invocation.vars,
        )

    def key(self) -> str:
        parts = [
            os.path.realpath(self.python),
            os.path.realpath(self.project_dir),
            os.path.realpath(self.manifest_path),
            self.adapter or "",
            self.profile_name or "",
            self.target or "",
            json.dumps(dict(self.vars or {}), sort_keys=True, default=str),
        ]
        return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:20]


def worker_key(invocation: DbtInvocation, manifest_path: str, adapter: str | None) -> str:
    """One warm worker per interpreter, project, deployed manifest, adapter, and what dbt fixes at parse time."""
    return WorkerSpec.of(invocation, manifest_path, adapter).key()


@contextlib.contextmanager
def starter_lock(directory: Path, key: str) -> Iterator[None]:
    """One starter at a time per worker key, across tasks and `idbt warm-worker` (an flock on the key's file)."""
    with open(directory / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def spawn_worker(
    spec: WorkerSpec,
    directory: Path,
    secret_names: Sequence[str],
    idle_timeout: float,
    env: Mapping[str, str],
    *,
    new_session: bool,
) -> subprocess.Popen[bytes]:
    """Start ``spec``'s worker in ``directory`` (its socket, log and working directory are named by its key)."""
    key = spec.key()
    workdir = directory / f"{key}.cwd"
    workdir.mkdir(mode=0o700, exist_ok=True)  # importing dbt reads a .env from its working directory
    args = [
        spec.python, os.fspath(WARM_SERVER), "--socket", os.fspath(directory / f"{key}.sock"),
        "--project-dir", spec.project_dir, "--profiles-dir", spec.profiles_dir,
        "--manifest", spec.manifest_path, "--idle-timeout", str(idle_timeout),
        *(arg for name in secret_names for arg in ("--secret-name", name)),
    ]  # fmt: skip
    for flag, value in (("--profile", spec.profile_name), ("--target", spec.target)):
        if value:
            args += [flag, value]
    if spec.vars:
        args += ["--vars", json.dumps(dict(spec.vars), sort_keys=True, default=str)]
    fd = os.open(directory / f"{key}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as log:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=child_environment(os.environ, env),
            start_new_session=new_session,
            close_fds=True,
        )


class WarmRunner(SubprocessRunner):
    """Runs each invocation as a child forked by the warm worker; the same results and events as a new process.

    ``on_fallback`` hears, once per run, why the warm worker could not take it; the run then goes to a new
    dbt process as :class:`SubprocessRunner` would start it.
    """

    def __init__(
        self,
        manifest_path: str,
        *,
        adapter: str | None,
        settings: WarmSettings | None = None,
        on_fallback: Callable[[str], None] = lambda reason: None,
    ) -> None:
        super().__init__()
        self.manifest_path = os.path.abspath(manifest_path)
        self.adapter = adapter
        self.settings = settings or WarmSettings.default()
        self.on_fallback = on_fallback
        self._sock: socket.socket | None = None
        self._warm_pid: int | None = None
        self._done = threading.Event()
        self._run_thread: int | None = None

    @property
    def pid(self) -> int | None:
        """The running dbt child's process id (forked by the warm worker, or a new process), None between runs."""
        with self._lock:
            return self._warm_pid if self._sock is not None else super().pid

    def _run_child(
        self, invocation: DbtInvocation, secret_env: Mapping[str, str], on_line: Callable[[str], None], cwd: str
    ) -> int:
        try:
            manifest_sha256 = hashlib.sha256(Path(self.manifest_path).read_bytes()).hexdigest()
            for attempt in (1, 2):
                with self._connection(invocation, secret_env, restart=attempt > 1) as sock:
                    code = self._exchange(sock, invocation, secret_env, on_line, cwd, manifest_sha256)
                if code is not None:
                    return code
            raise WarmUnavailable("the warm dbt worker kept refusing the run as stale")
        except WarmUnavailable as why:
            self.on_fallback(str(why))
            return super()._run_child(invocation, secret_env, on_line, cwd)

    @contextlib.contextmanager
    def _connection(
        self, invocation: DbtInvocation, secret_env: Mapping[str, str], *, restart: bool
    ) -> Iterator[socket.socket]:
        directory = private_directory(self.settings.directory)
        spec = WorkerSpec.of(invocation, self.manifest_path, self.adapter)
        path = directory / f"{spec.key()}.sock"
        sock = None if restart else connect(path)
        if sock is None:
            sock = self._start(spec, invocation, secret_env, directory, path)
        with self._lock:
            self._sock = sock
            self._run_thread = threading.get_ident()
            self._done.clear()
        try:
            yield sock
        finally:
            with self._lock:
                self._sock, self._warm_pid = None, None
            sock.close()
            self._done.set()

    def _start(
        self,
        spec: WorkerSpec,
        invocation: DbtInvocation,
        secret_env: Mapping[str, str],
        directory: Path,
        path: Path,
    ) -> socket.socket:
        """Start ``spec``'s worker unless another task just did; one starter at a time per key."""
        key = spec.key()
        with starter_lock(directory, key):
            sock = connect(path)
            if sock is not None:
                return sock
            # The worker outlives this task: it gets the scrubbed environment, minus the task's own comment.
            env = {k: v for k, v in invocation.env.items() if k != QUERY_COMMENT_ENV}
            # Not in the task's process group: it serves the tasks after this one.
            proc = spawn_worker(spec, directory, list(secret_env), self.settings.idle_timeout, env, new_session=True)
            log_path = directory / f"{key}.log"
            deadline = time.monotonic() + self.settings.start_timeout
            while time.monotonic() < deadline:
                sock = connect(path)
                if sock is not None:
                    return sock
                if proc.poll() is not None:
                    raise WarmUnavailable(f"the warm dbt worker exited at start: {_tail(log_path)}")
                time.sleep(0.05)
            proc.kill()
            raise WarmUnavailable(f"the warm dbt worker did not start in {self.settings.start_timeout:.0f}s")

    def _exchange(
        self,
        sock: socket.socket,
        invocation: DbtInvocation,
        secret_env: Mapping[str, str],
        on_line: Callable[[str], None],
        cwd: str,
        manifest_sha256: str,
    ) -> int | None:
        """Send one run and relay its output; its exit code, or None when the worker refused a stale manifest."""
        nonce = secrets.token_hex(8)
        request = {
            "v": PROTOCOL,
            "nonce": nonce,
            "argv": invocation.args(),
            "env": child_environment(os.environ, invocation.env),
            "cwd": os.path.abspath(cwd),
            "manifest_sha256": manifest_sha256,
        }
        read, write = os.pipe()
        try:
            # The secrets go in a pipe only the forked child reads: the worker itself never holds a token.
            os.write(write, json.dumps({"secret_env": dict(secret_env)}).encode("utf-8") + b"\n")
            os.close(write)
            data = json.dumps(request).encode("utf-8") + b"\n"
            sent = socket.send_fds(sock, [data], [read])
            if sent < len(data):  # never an empty send: the worker may already have answered and closed
                sock.sendall(data[sent:])
        except OSError as exc:
            raise WarmUnavailable(f"the warm dbt worker did not take the run ({exc})") from None
        finally:
            os.close(read)
            with contextlib.suppress(OSError):
                os.close(write)
        own = f"{TRAILER} {nonce} "
        with sock.makefile("rb") as stream:
            for raw in _lines(stream):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.startswith(own):
                    verb, _, value = line[len(own) :].partition(" ")
                    if verb == "child":
                        with self._lock:
                            self._warm_pid = int(value)
                        continue
                    if verb == "exit":
                        return int(value)
                    if value.startswith("stale"):
                        return None
                    raise WarmUnavailable(f"the warm dbt worker refused the run: {value}")
                on_line(scrub_secrets(line, secret_env))
        on_line(
            "idbt worker: the warm dbt worker stopped during the run (killed or crashed); the retry starts a new one"
        )
        return 2

    def terminate(self, grace_seconds: float = 10) -> None:
        """Cancel a warm run (the worker sends dbt SIGTERM, then SIGKILL) and wait for it; else as a new process."""
        with self._lock:
            self._terminated = True
            sock = self._sock
            on_run_thread = threading.get_ident() == self._run_thread
        if sock is None:
            super().terminate(grace_seconds)
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        # Airflow calls on_kill from its SIGTERM handler on the thread that runs the task: waiting there would
        # block the very loop that reads the run to its end, so return and let that loop finish it.
        if not on_run_thread:
            self._done.wait(grace_seconds + 5)


def worker_pids(directory: Path) -> list[int]:
    """The process ids of the warm workers started in ``directory`` (from their logs' ready line)."""
    found = []
    for log in sorted(Path(directory).glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            ready = _READY.match(line)
            if ready:
                found.append(int(ready.group(1)))
    return found


def stop_workers(directory: Path) -> None:
    """Ask every warm worker started in ``directory`` to stop (tests and benchmarks clean up with it)."""
    for pid in worker_pids(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _lines(stream: Any) -> Iterator[bytes]:
    """The stream's lines; a reset connection ends it like a close (the missing trailer tells the caller)."""
    try:
        yield from stream
    except ConnectionResetError:
        return


def connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError:
        sock.close()
        return None
    return sock


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "no output"
