"""Run one dbt command in a child process that receives the token over a pipe, and collect its result."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.commands import INDIRECT_SELECTION
from airflow_provider_idbt.dbt.results import RunResult, load_run_result

WORKER = Path(__file__).with_name("worker.py")
SECRET_PREFIX = "DBT_ENV_SECRET_"
_TAIL_LINES = 20
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
EXPECT_DBT_VERSION_ENV = "IDBT_EXPECT_DBT_VERSION"  # read by worker.py, which cannot import this module
HOOK_TYPES = ("on-run-start", "on-run-end")  # worker.py's too

# The child starts from an allowlist, not from a copy of the Airflow worker's environment, which holds
# the metadata database URL, the Fernet key, connections and the worker's own cloud credentials.
_ALLOWED_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "TERM",
        "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
        "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    }
)  # fmt: skip
_ALLOWED_PREFIXES = ("LC_", "DBT_", "IDBT_", "PG")
# Even allowlisted names are dropped when they look like a credential, or lead to an ambient one
# (a password file) that would let dbt authenticate as someone other than the task's identity.
_SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|PASSFILE|TOKEN|CREDENTIAL|PRIVATE_?KEY|API_?KEY|ACCESS_?KEY|SESSION_?KEY",
    re.IGNORECASE,
)
_CHILD_SETTINGS = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def child_environment(base: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the dbt child is exec'd with: allowlisted, secret-free names plus ``extra``."""
    env = {
        name: value
        for name, value in base.items()
        if (name in _ALLOWED_NAMES or name.startswith(_ALLOWED_PREFIXES)) and not _SECRET_NAME.search(name)
    }
    for name, value in (extra or {}).items():
        if _SECRET_NAME.search(name) or name.startswith(SECRET_PREFIX):
            raise ValueError(
                f"environment variable {name} looks like a secret; pass it in secret_env as {SECRET_PREFIX}*"
            )
        env[name] = value
    env.update(_CHILD_SETTINGS)
    return env


@dataclass(frozen=True)
class DbtInvocation:
    """One dbt command for one model, with every path private to the task try."""

    project_dir: str
    profiles_dir: str
    select: str
    target_path: str
    log_path: str
    profile_name: str | None = None
    target: str | None = None
    vars: Mapping[str, Any] | None = field(default=None, hash=False)
    extra_args: tuple[str, ...] = ()
    # The interpreter of the virtualenv that has dbt; it need not have this provider installed.
    python: str = sys.executable
    command: str = "run"
    exclude: str | None = None
    # Non-secret variables the project or profile reads with env_var() (secrets go in secret_env).
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    # A `partial_parse.msgpack` (or the directory holding it, e.g. the manifest's target/) from `dbt parse`:
    # copied into target_path, it spares the task a full project parse. dbt checks that it still matches
    # the project, vars and profile, and parses in full when it does not, so a stale one is harmless.
    partial_parse_from: str | None = None
    # The project's on-run-start/on-run-end hooks this run runs: True (dbt's default: all), False (none: they
    # run once per DAG run in their own tasks) or the hook types it still runs (docs/run-hooks.md). With
    # command="hooks" no node runs, only the hooks of the one type given here.
    run_hooks: bool | tuple[str, ...] = True

    def args(self) -> list[str]:
        """dbt's argv: readable text on stdout, a JSON log file under ``log_path`` for machines."""
        if self.command == "hooks":
            if not isinstance(self.run_hooks, tuple) or len(self.run_hooks) != 1 or self.run_hooks[0] not in HOOK_TYPES:
                raise ValueError(f"command='hooks' needs run_hooks=(<one of {', '.join(HOOK_TYPES)}>,)")
            # The worker runs the hooks through dbt's `run` set-up; a selector that matches no node keeps it
            # from running models should a dbt ever ignore the worker's hooks-only task.
            argv = ["run", "--select", "idbt_hooks_only_selects_nothing"]
        else:
            argv = [self.command, "--select", self.select]
            if self.command in INDIRECT_SELECTION:
                argv += ["--indirect-selection", INDIRECT_SELECTION[self.command]]
        if self.exclude:
            argv += ["--exclude", self.exclude]
        # Absolute paths: the child runs in its own empty working directory.
        argv += ["--project-dir", _abs(self.project_dir), "--profiles-dir", _abs(self.profiles_dir)]
        if self.profile_name:
            argv += ["--profile", self.profile_name]
        if self.target:
            argv += ["--target", self.target]
        argv += ["--target-path", _abs(self.target_path), "--log-path", _abs(self.log_path)]
        if self.vars:
            argv += ["--vars", json.dumps(dict(self.vars), sort_keys=True, default=str)]
        argv += [
            "--log-format", "text", "--log-format-file", "json", "--no-use-colors", "--no-use-colors-file",
            "--no-send-anonymous-usage-stats", "--no-version-check",
            # Cache only the selected model's schema: faster, and an identity granted one schema must not
            # fail on listing the others.
            "--cache-selected-only",
        ]  # fmt: skip
        return [*argv, *self.extra_args, *self._hook_args()]

    def _hook_args(self) -> list[str]:
        # Options of the worker script (worker.py), which removes them before dbt reads argv.
        if self.command == "hooks":
            return ["--idbt-hooks-only", str(self.run_hooks[0])]  # type: ignore[index]
        if self.run_hooks is True:
            return []
        kept = () if self.run_hooks is False else tuple(self.run_hooks)
        bad = sorted(set(kept) - set(HOOK_TYPES))
        if bad:
            raise ValueError(f"run_hooks: unknown hook types {', '.join(bad)}; use {', '.join(HOOK_TYPES)}")
        return ["--idbt-project-hooks", ",".join(t for t in HOOK_TYPES if t in kept) or "none"]

    @property
    def run_results_path(self) -> Path:
        return Path(_abs(self.target_path)) / "run_results.json"


class SubprocessRunner:
    """Runs :class:`DbtInvocation` s in a fresh child process each; :meth:`terminate` may come from any thread."""

    def __init__(self, worker: Path = WORKER) -> None:
        self.worker = worker
        self._lock = threading.RLock()  # terminate() may run in a signal handler on the run() thread
        self._proc: subprocess.Popen[bytes] | None = None
        self._terminated = False

    def run(
        self, invocation: DbtInvocation, secret_env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> RunResult:
        bad = sorted(name for name in secret_env if not name.startswith(SECRET_PREFIX))
        if bad:
            # dbt only scrubs DBT_ENV_SECRET_* values from its output; other names could be logged.
            raise ValueError(f"secret_env names must start with {SECRET_PREFIX}: {', '.join(bad)}")
        with self._lock:
            if self._terminated:
                return RunResult(-signal.SIGTERM, "invocation_error", message="terminated before dbt started")
        invocation.run_results_path.unlink(missing_ok=True)
        _seed_partial_parse(invocation)
        # importing dbt loads a `.env` from the working directory: give it an empty private one.
        cwd = tempfile.mkdtemp(prefix="idbt-cwd-")
        tail: deque[str] = deque(maxlen=_TAIL_LINES)

        def collect(line: str) -> None:
            tail.append(line)
            on_line(line)

        started = time.monotonic()
        try:
            returncode = self._run_child(invocation, secret_env, collect, cwd)
        finally:
            shutil.rmtree(cwd, ignore_errors=True)
        duration = round(time.monotonic() - started, 3)
        result = load_run_result(returncode, invocation.run_results_path, duration=duration)
        if result.status == "invocation_error" and not result.nodes:
            result = replace(result, message=_explain(tail, result.message))
        with self._lock:
            terminated = self._terminated
        if terminated:
            return replace(result, status="invocation_error", message="dbt was terminated (task killed)")
        return result

    def _run_child(
        self, invocation: DbtInvocation, secret_env: Mapping[str, str], on_line: Callable[[str], None], cwd: str
    ) -> int:
        proc = subprocess.Popen(
            [invocation.python, os.fspath(self.worker), *invocation.args()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=child_environment(os.environ, invocation.env),
            start_new_session=True,  # its own process group, so terminate() reaches anything dbt spawns
            close_fds=True,
        )
        with self._lock:
            self._proc = proc
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"secret_env": dict(secret_env)}).encode("utf-8") + b"\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the child died at start-up; its output and exit code say why
            for raw in proc.stdout:
                on_line(scrub_secrets(raw.decode("utf-8", errors="replace").rstrip("\r\n"), secret_env))
            return proc.wait()
        finally:
            with self._lock:
                self._proc = None
            if proc.poll() is None:  # on_line raised: do not leave dbt running
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    @property
    def pid(self) -> int | None:
        """The running dbt child's process id (also its process group id), or None between runs."""
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    def terminate(self, grace_seconds: float = 10) -> None:
        """Ask dbt to stop (SIGTERM: it cancels its warehouse queries), then SIGKILL the group after the grace."""
        with self._lock:
            self._terminated = True
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)


def _seed_partial_parse(invocation: DbtInvocation) -> None:
    if not invocation.partial_parse_from:
        return
    source = Path(invocation.partial_parse_from)
    if source.is_dir():
        source = source / PARTIAL_PARSE_FILE
    if source.is_file():
        target = Path(_abs(invocation.target_path))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / PARTIAL_PARSE_FILE)


def _abs(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def _explain(tail: deque[str], fallback: str) -> str:
    """The worker's own diagnosis if it gave one, else the last lines dbt printed."""
    worker = [line for line in tail if line.startswith("idbt worker:")]
    lines = worker or [line for line in tail if line.strip()]
    return "\n".join(lines) or fallback


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def scrub_secrets(line: str, secrets: Mapping[str, str]) -> str:
    # dbt already masks DBT_ENV_SECRET_* values; this also covers output that bypasses dbt's logger.
    for value in secrets.values():
        if value:
            line = line.replace(value, "*****")
    return line
