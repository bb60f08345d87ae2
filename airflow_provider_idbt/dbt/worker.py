"""The dbt child process: read secrets from stdin, hide them from other processes, run dbt, exit with its verdict.

Runs as a plain script (``python worker.py run --select ...``) in whichever virtualenv has dbt, so it imports
only the standard library and dbt, never this provider. Protocol: one JSON line on stdin,
``{"secret_env": {"DBT_ENV_SECRET_IDBT_TOKEN": "..."}}``; dbt's arguments in argv.
Exit codes: 0 success, 1 a node failed, 2 dbt could not run (bad arguments, profile, project, interrupted).
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts this file's directory first on sys.path, where the provider's own modules
# (manifest, results, ...) would shadow same-named top-level modules of dbt's dependencies.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import atexit
import ctypes
import json
import signal
from collections.abc import Mapping
from types import FrameType
from typing import Any

EXIT_SUCCESS, EXIT_FAILURE, EXIT_ERROR = 0, 1, 2
SECRET_PREFIX = "DBT_ENV_SECRET_"
# The dbt version the deployed manifest was built with; a dbt of another minor version must not run it.
EXPECT_DBT_VERSION_ENV = "IDBT_EXPECT_DBT_VERSION"
_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1


def read_secrets(line: str) -> dict[str, str]:
    message = json.loads(line) if line.strip() else {}
    secrets = message.get("secret_env") or {}
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise ValueError("secret_env must map names to strings")
    bad = [name for name in secrets if not str(name).startswith(SECRET_PREFIX)]
    if bad:
        # dbt scrubs only DBT_ENV_SECRET_* values from logs and errors; anything else could leak there.
        raise ValueError(f"secret variables must start with {SECRET_PREFIX}: {', '.join(sorted(bad))}")
    return {str(name): value for name, value in secrets.items()}


def make_undumpable() -> bool:
    """Stop same-user processes from reading this process's memory and /proc environ (Linux, best effort)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when ``parent`` (the warm worker that forked it) dies; no run outlives it."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(EXIT_ERROR)


def dbt_version_problem() -> str | None:
    """Why this interpreter's dbt must not run the deployed manifest (None when it may, or dbt is missing)."""
    expected = os.environ.get(EXPECT_DBT_VERSION_ENV, "")
    try:
        from dbt.version import __version__ as installed
    except ImportError:
        return None  # the import of dbt itself says so, with the interpreter's path
    if expected and expected.split(".")[:2] != str(installed).split(".")[:2]:
        return (
            f"{sys.executable} has dbt-core {installed}, but the manifest was built by dbt {expected}; install "
            f"dbt-core {'.'.join(expected.split('.')[:2])}.* in that virtualenv or rebuild the manifest with it"
        )
    return None


def scrub(text: str, secrets: Mapping[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "*****")
    return text


def interrupt(signum: int, frame: FrameType | None) -> None:
    # dbt treats KeyboardInterrupt as "cancel": it cancels the warehouse queries it has open, then stops.
    cancel_driver_queries()
    raise KeyboardInterrupt(f"signal {signum}")


def cancel_driver_queries() -> int:
    """Cancel running statements through the driver's own cancel request, before dbt's cancel runs.

    dbt-postgres cancels with ``pg_terminate_backend`` from a new connection that runs ``SET ROLE`` first,
    and PostgreSQL refuses that (the role is not a member of the login role whose backend it signals), so a
    killed task's statement would run on. libpq's cancel request carries the backend's secret key instead of
    a role check. psycopg's ``connection.cancel()`` is documented as safe from another thread or a signal
    handler; other drivers are left to dbt's own cancel. No library offers this across adapters: by hand.
    """
    try:
        from dbt.adapters.factory import FACTORY
    except ImportError:
        return 0
    cancelled = 0
    for adapter in list(FACTORY.adapters.values()):
        connections = getattr(getattr(adapter, "connections", None), "thread_connections", {})
        for connection in list(connections.values()):
            handle: Any = getattr(connection, "handle", None)
            if handle is None or not type(handle).__module__.startswith(("psycopg2", "psycopg")):
                continue
            try:
                handle.cancel()
                cancelled += 1
            except Exception:  # noqa: S112 - best effort: dbt's own cancel still follows
                continue
    return cancelled


def main(argv: list[str]) -> int:
    try:
        secrets = read_secrets(sys.stdin.readline())
    except ValueError as exc:
        print(f"idbt worker: bad secret message on stdin: {exc}", file=sys.stderr)
        return EXIT_ERROR
    make_undumpable()
    os.environ.update(secrets)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        from dbt.cli.main import dbtRunner
    except ImportError as exc:
        print(f"idbt worker: dbt is not installed for {sys.executable}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    problem = dbt_version_problem()
    if problem:
        print(f"idbt worker: {problem}", file=sys.stderr)
        return EXIT_ERROR
    return verdict(invoke(dbtRunner(), argv), secrets)


def invoke(runner: Any, argv: list[str]) -> Any:
    """Run dbt writing only ``run_results.json`` to the run's target path, from the result dbt returns.

    With its default ``--write-json`` dbt also writes the whole project's ``manifest.json`` into the private
    target of every one-model run, which nobody reads: it grows with the project (docs/performance.md). dbt's
    ``--no-write-json`` drops both files, so run_results.json is written here with dbt's own ``write()``.
    """
    result = runner.invoke([*argv, "--no-write-json"])
    target = _option(argv, "--target-path")
    if target and hasattr(result.result, "write"):
        result.result.write(os.path.join(target, "run_results.json"))
    return result


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return None


def verdict(result: Any, secrets: Mapping[str, str]) -> int:
    """The exit code for a dbtRunnerResult; why dbt could not run goes to stderr, secrets scrubbed."""
    if result.success:
        return EXIT_SUCCESS
    if result.exception is not None:
        error = f"{type(result.exception).__name__}: {result.exception}"
        print(f"idbt worker: dbt could not run: {scrub(error, secrets)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_FAILURE


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Leave without the interpreter's teardown (module and GC finalisation of everything dbt imported: about
    # half a second per model task, docs/performance.md). The exit hooks still run: dbt's adapters close their
    # connections there, and logging flushes its files.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
