"""`idbt warm-worker`: keep one project's warm dbt worker running as a service (a container, a systemd unit).

Tasks start the warm worker on demand; this command is for hosts that would rather have it ready before the first
task and have a supervisor watch it. It starts the same worker a task would (same key, so tasks find its socket),
in the same private directory, and starts it again when it exits: after a new deployment retired it, after a
crash, or after it idled out. It must share the task processes' filesystem: the forked dbt children write into
each task's private directory and read the project and profiles from the same paths.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.dbt.profiles import declared_adapter_type
from airflow_provider_idbt.dbt.runner import EXPECT_DBT_VERSION_ENV
from airflow_provider_idbt.dbt.warm import (
    WarmSettings,
    WorkerSpec,
    connect,
    private_directory,
    spawn_worker,
    starter_lock,
)
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR

# A service's worker need not idle out: the loop below would only start it again.
SERVICE_IDLE_TIMEOUT = 7 * 24 * 3600.0
RESTART_PAUSE = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", required=True, help="the deployed dbt project, as the tasks name it")
    parser.add_argument("--manifest", required=True, help="the deployed manifest.json, as the tasks name it")
    parser.add_argument("--profiles-dir", required=True, help="a directory with the profiles.yml the tasks use")
    parser.add_argument("--profile", help="as the tasks' profile_name, if they set one")
    parser.add_argument("--target", help="as the tasks' target, if they set one")
    parser.add_argument("--vars", help="as the tasks' dbt_vars, as JSON")
    parser.add_argument("--dbt-python", default=sys.executable, help="as the tasks' dbt_python (default: this one)")
    parser.add_argument("--adapter", help="the adapter type, when profiles.yml does not declare it plainly")
    parser.add_argument("--warm-dir", help="the private directory of the workers (default: as the tasks choose)")


def spec_from(args: argparse.Namespace) -> WorkerSpec:
    """The worker the tasks of these settings would start: the same key, so they find its socket."""
    for flag, path in (("--project-dir", args.project_dir), ("--manifest", args.manifest)):
        if not os.path.exists(path):
            raise SystemExit(f"idbt warm-worker: {flag} {path} does not exist")
    try:
        dbt_vars = json.loads(args.vars) if args.vars else None
    except ValueError as exc:
        raise SystemExit(f"idbt warm-worker: --vars is not JSON: {exc}") from None
    adapter = args.adapter or declared_adapter_type(args.profiles_dir, args.project_dir, args.profile, args.target)
    if adapter is None:
        raise SystemExit(
            f"idbt warm-worker: cannot read the adapter type from {args.profiles_dir}/profiles.yml; give --adapter"
        )
    return WorkerSpec(
        python=args.dbt_python,
        project_dir=os.path.abspath(args.project_dir),
        profiles_dir=os.path.abspath(args.profiles_dir),
        manifest_path=os.path.abspath(args.manifest),
        adapter=adapter,
        profile_name=args.profile,
        target=args.target,
        vars=dbt_vars,
    )


def serve(spec: WorkerSpec, settings: WarmSettings) -> int:
    """Run the worker until SIGTERM or SIGINT, starting it again whenever it exits."""
    directory = private_directory(settings.directory)
    key = spec.key()
    path = directory / f"{key}.sock"
    stopping = False
    worker: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if worker is not None and worker.poll() is None:
            worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # As a task would: the worker refuses a dbt of another minor version than the manifest's.
    env = {EXPECT_DBT_VERSION_ENV: ManifestIndex.load(spec.manifest_path).dbt_version}
    print(f"idbt warm-worker: serving {spec.project_dir} ({spec.manifest_path}) at {path}", flush=True)
    while not stopping:
        with starter_lock(directory, key):
            running = connect(path)
            if running is None:
                worker = spawn_worker(spec, directory, (TOKEN_ENV_VAR,), SERVICE_IDLE_TIMEOUT, env, new_session=False)
        if running is not None:
            # A task started this key's worker first: it serves the tasks; look again once it has gone.
            running.close()
            time.sleep(RESTART_PAUSE)
            continue
        assert worker is not None
        print(f"idbt warm-worker: worker pid {worker.pid} started", flush=True)
        code = worker.wait()
        worker = None
        print(f"idbt warm-worker: worker exited with {code}", flush=True)
        if stopping:
            break
        time.sleep(RESTART_PAUSE)
    return 0


def main(args: argparse.Namespace) -> int:
    settings = WarmSettings.default(args.warm_dir)
    with contextlib.suppress(KeyboardInterrupt):
        return serve(spec_from(args), settings)
    return 0
