"""The dbt child process: read secrets from stdin, hide them from other processes, run dbt, exit with its verdict.

Runs as a plain script (``python worker.py run --select ...``) in whichever virtualenv has dbt, so it imports
only the standard library and dbt, never this provider. Protocol: one JSON line on stdin,
``{"secret_env": {"DBT_ENV_SECRET_IDBT_TOKEN": "..."}}``; dbt's arguments in argv.
Exit codes: 0 success, 1 a node failed, 2 dbt could not run (bad arguments, profile, project, interrupted).
Two options of this script, removed before dbt sees argv: ``--idbt-project-hooks none|<types>`` (run the node
with only those project hooks), ``--idbt-hooks-only on-run-start|on-run-end`` (run only those hooks).
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
        import dbt.cli.main  # noqa: F401 - here, so a missing dbt is reported before anything else
    except ImportError as exc:
        print(f"idbt worker: dbt is not installed for {sys.executable}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    problem = dbt_version_problem()
    if problem:
        print(f"idbt worker: {problem}", file=sys.stderr)
        return EXIT_ERROR
    try:
        result = invoke(argv)
    except (ValueError, RuntimeError) as exc:
        print(f"idbt worker: {scrub(str(exc), secrets)}", file=sys.stderr)
        return EXIT_ERROR
    return verdict(result, secrets)


def invoke(argv: list[str], manifest: Any = None) -> Any:
    """Run dbt writing only ``run_results.json`` to the run's target path, from the result dbt returns.

    With its default ``--write-json`` dbt also writes the whole project's ``manifest.json`` into the private
    target of every one-model run, which nobody reads: it grows with the project (docs/performance.md). dbt's
    ``--no-write-json`` drops both files, so run_results.json is written here with dbt's own ``write()``.
    ``manifest``: the warm worker's pre-loaded one (this process's copy of it; a forked child may change it).
    """
    from dbt.cli.main import dbtRunner

    argv, keep_hooks, hooks_only = hook_options(argv)
    if (keep_hooks is not None or hooks_only) and manifest is None:
        # dbt has no flag to skip project hooks, but runs those of the manifest it is handed: parse here as
        # `dbt run` would (the seeded partial parse, checked against the project by dbt), then hand it over.
        parsed = dbtRunner().invoke(["parse", *parse_args(argv), "--no-write-json", "--log-level", "warn"])
        if not parsed.success:
            return parsed
        manifest = parsed.result
    if keep_hooks is not None:
        drop_hooks(manifest, keep_hooks)
    if hooks_only:
        result = run_hooks_only(manifest, [*argv, "--no-write-json"], hooks_only)
    else:
        result = dbtRunner(manifest=manifest).invoke([*argv, "--no-write-json"])
    target = _option(argv, "--target-path")
    if target and hasattr(result.result, "write"):
        result.result.write(os.path.join(target, "run_results.json"))
    return result


# -- project hooks -----------------------------------------------------------------------------------------
# dbt APIs relied on (dbt-core 1.8-1.11): `RunTask.before_run`/`after_run` run the hooks that
# `RunTask.get_hooks_by_type` finds in `self.manifest.nodes` (HookNode, tagged on-run-start/on-run-end), so a
# manifest without them runs none; `RunTask.safe_run_hooks(adapter, RunHookType, extra_context)` inside
# `adapter.connection_named("master")` runs one type in dbt's order with dbt's own events and results, as
# `after_run` does; `dbtRunner(manifest=...)` skips parsing; dbt's `run` command builds its task from
# `dbt.task.run.RunTask` when it is invoked, which is how a hooks-only run gets dbt's whole set-up (flags,
# profile, adapter, query comment, logging) and nothing else.
HOOK_TYPES = ("on-run-start", "on-run-end")
KEEP_HOOKS_OPTION, HOOKS_ONLY_OPTION = "--idbt-project-hooks", "--idbt-hooks-only"
_PARSE_VALUE_FLAGS = frozenset(
    {"--project-dir", "--profiles-dir", "--profile", "--target", "--target-path", "--log-path", "--vars",
     "--log-format", "--log-format-file", "--log-level-file"}
)  # fmt: skip
_PARSE_SWITCHES = frozenset(
    {"--no-use-colors", "--no-use-colors-file", "--no-send-anonymous-usage-stats", "--no-version-check",
     "--partial-parse", "--no-partial-parse"}
)  # fmt: skip


def hook_options(argv: list[str]) -> tuple[list[str], frozenset[str] | None, str | None]:
    """dbt's argv without this script's options; the hook types a node run keeps (None: all); hooks-only type."""
    rest: list[str] = []
    keep: frozenset[str] | None = None
    only: str | None = None
    items = iter(argv)
    for arg in items:
        if arg not in (KEEP_HOOKS_OPTION, HOOKS_ONLY_OPTION):
            rest.append(arg)
            continue
        value = next(items, "")
        names = frozenset(name for name in value.split(",") if name and name != "none")
        if not names <= set(HOOK_TYPES) or (arg == HOOKS_ONLY_OPTION and len(names) != 1):
            raise ValueError(f"{arg} {value!r}: use none or {', '.join(HOOK_TYPES)}")
        if arg == KEEP_HOOKS_OPTION:
            keep = names
        else:
            only = next(iter(names))
    return rest, keep, only


def parse_args(argv: list[str]) -> list[str]:
    """The options of a node's argv that `dbt parse` takes too (paths, profile, target, vars, logging)."""
    kept: list[str] = []
    for i, arg in enumerate(argv):
        if arg in _PARSE_SWITCHES:
            kept.append(arg)
        elif arg in _PARSE_VALUE_FLAGS and i + 1 < len(argv):
            kept += [arg, argv[i + 1]]
    return kept


def drop_hooks(manifest: Any, keep: frozenset[str]) -> list[str]:
    """Remove the project hooks not in ``keep`` from this process's manifest; their unique ids."""
    dropped = [
        uid
        for uid, node in manifest.nodes.items()
        if getattr(node, "resource_type", None) == "operation" and set(node.tags) & (set(HOOK_TYPES) - keep)
    ]
    for uid in dropped:
        del manifest.nodes[uid]
    return dropped


def run_hooks_only(manifest: Any, argv: list[str], hook_type: str) -> Any:
    """Run only the project's ``hook_type`` hooks, through dbt's `run` command set-up and RunTask's own runner.

    on-run-end gets an empty ``results``/``schemas``/``database_schemas`` context: no model ran here.
    """
    import dbt.task.run as dbt_run
    from dbt.adapters.factory import get_adapter
    from dbt.cli.main import dbtRunner
    from dbt.node_types import RunHookType

    ran: list[bool] = []

    class HooksOnlyTask(dbt_run.RunTask):
        def run(self) -> Any:
            import time
            from datetime import UTC, datetime

            adapter = get_adapter(self.config)
            self.started_at = time.time()
            extras: dict[str, list[Any]] = {}
            if hook_type == "on-run-end":
                extras = {"results": [], "schemas": [], "database_schemas": []}
            try:
                with adapter.connection_named("master"):
                    self.safe_run_hooks(adapter, RunHookType(hook_type), extras)
            finally:
                adapter.cleanup_connections()
            ran.append(True)
            result = self.get_result(
                results=self.node_results,
                elapsed_time=time.time() - self.started_at,
                generated_at=datetime.now(UTC).replace(tzinfo=None),
            )
            self.task_end_messages(result.results)
            return result

    original = dbt_run.RunTask
    dbt_run.RunTask = HooksOnlyTask  # type: ignore[misc] # this process runs one dbt command and exits: nothing else sees it
    try:
        result = dbtRunner(manifest=manifest).invoke(argv)
    finally:
        dbt_run.RunTask = original  # type: ignore[misc]
    if not ran and result.exception is None:
        # A dbt whose `run` no longer builds dbt.task.run.RunTask at call time: it ran nothing (argv selects
        # no node), and saying so beats reporting hooks that did not run.
        raise RuntimeError("this dbt version cannot run project hooks alone; use run_hooks='per_task'")
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
