"""`idbt prepare`: build what a deployment's DAGs read (manifest, partial parse, slim index) at build time.

It runs `dbt deps` (when the project declares packages) and `dbt parse` as child processes of the given dbt, which
may live in a virtualenv of its own, writes the slim index beside the manifest and, with ``--upload``, copies the
three files to object storage through Airflow's ObjectStoragePath. It belongs in CI or an image build, never in a
task: a large project takes about a minute to parse, and tasks must start from a parse done once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

MANIFEST_FILE = "manifest.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PACKAGE_FILES = ("packages.yml", "dependencies.yml")
# Run as `python -c` when --dbt names an interpreter: dbt-core has no `python -m dbt`.
_DBT_FROM_PYTHON = "import sys; from dbt.cli.main import cli; sys.exit(cli())"
HELP = (
    "run `dbt deps` and `dbt parse` and write the slim index, at build time (CI or an image build); "
    "never run it in a task"
)


class PrepareFailed(Exception):
    """A step failed; the message says which and why. ``exit_code`` is dbt's own when dbt failed."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", required=True, metavar="DIR", help="the dbt project (has dbt_project.yml)")
    parser.add_argument("--profiles-dir", metavar="DIR", help="where profiles.yml is (dbt's default otherwise)")
    parser.add_argument(
        "--target", metavar="T", help="dbt target; pass the same as the tasks, or none when they pass none"
    )
    parser.add_argument(
        "--target-path", metavar="DIR", help="where dbt writes manifest.json (default: the project's target-path)"
    )
    parser.add_argument(
        "--dbt",
        metavar="PATH",
        help="the dbt executable, or the python of a virtualenv that has dbt (default: the dbt beside this idbt)",
    )
    parser.add_argument(
        "--upload",
        metavar="URI",
        help="copy manifest.json, partial_parse.msgpack and idbt_index.json to this folder (s3://, gs://, abfs://, "
        "file://) through Airflow's ObjectStoragePath",
    )
    parser.add_argument("--conn-id", metavar="ID", help="the Airflow connection ObjectStoragePath uses for --upload")


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `idbt prepare`; the exit code is 0, dbt's own when dbt failed, or 2 for bad input or a failed upload."""
    stream = out or sys.stdout
    try:
        prepare(
            Path(args.project_dir),
            profiles_dir=Path(args.profiles_dir) if args.profiles_dir else None,
            target=args.target,
            target_path=Path(args.target_path) if args.target_path else None,
            dbt=args.dbt,
            upload=args.upload,
            conn_id=args.conn_id,
            out=stream,
        )
    except PrepareFailed as exc:
        print(f"idbt prepare: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


def prepare(
    project_dir: Path,
    *,
    profiles_dir: Path | None = None,
    target: str | None = None,
    target_path: Path | None = None,
    dbt: str | None = None,
    upload: str | None = None,
    conn_id: str | None = None,
    out: TextIO = sys.stdout,
) -> Path:
    """Build the manifest, partial parse file and slim index of ``project_dir``; return the manifest's path."""
    project_dir = project_dir.resolve()
    if not (project_dir / "dbt_project.yml").is_file():
        raise PrepareFailed(f"{project_dir} has no dbt_project.yml; pass --project-dir the dbt project's folder")
    command = dbt_command(dbt)
    common = ["--project-dir", str(project_dir)]
    if profiles_dir is not None:
        common += ["--profiles-dir", str(profiles_dir.resolve())]
    if target:
        common += ["--target", target]
    if any((project_dir / name).is_file() for name in PACKAGE_FILES):
        _step("dbt deps", lambda: run_dbt(command, ["deps", "--project-dir", str(project_dir)], project_dir, out), out)
    parse_args = ["parse", *common]
    if target_path is not None:
        parse_args += ["--target-path", str(target_path.resolve())]
    _step("dbt parse", lambda: run_dbt(command, parse_args, project_dir, out), out)
    manifest = (target_path.resolve() if target_path else project_dir / _project_target_path(project_dir)) / (
        MANIFEST_FILE
    )
    if not manifest.is_file():
        raise PrepareFailed(f"dbt parse succeeded but wrote no {manifest}; is target-path set elsewhere?")
    _step("slim index", lambda: _write_index(manifest), out, detail=lambda nodes: f"{nodes:,} nodes")
    if upload:
        files = upload_files(manifest)
        # Airflow's import and filesystem discovery take seconds of their own: timed apart from the copy.
        folder = _step(f"open {upload}", lambda: storage_folder(upload, conn_id=conn_id), out)
        _step(
            f"upload {upload}",
            lambda: upload_to(files, folder, uri=upload),
            out,
            detail=lambda size: f"{len(files)} files, {_megabytes(size)}",
        )
    return manifest


def dbt_command(dbt: str | None) -> list[str]:
    """The argv prefix that runs dbt: an executable, or a Python interpreter that imports dbt."""
    if dbt is None:
        beside = Path(sys.executable).with_name("dbt")
        found = str(beside) if beside.exists() else shutil.which("dbt")
        if found is None:
            raise PrepareFailed("no dbt found beside this idbt or on PATH; pass --dbt PATH-TO-dbt (or its python)")
        return [found]
    path = Path(dbt)
    # absolute(), not resolve(): a virtualenv's python is a symlink, and following it would leave the virtualenv.
    found = str(path.absolute()) if path.exists() else shutil.which(dbt)
    if found is None:
        raise PrepareFailed(f"--dbt {dbt}: no such file; pass the dbt executable or the python of its virtualenv")
    if path.name.startswith("python"):
        return [found, "-c", _DBT_FROM_PYTHON]
    return [found]


def run_dbt(command: Sequence[str], args: Sequence[str], cwd: Path, out: TextIO) -> None:
    """Run one dbt command, echoing its output indented as it comes; dbt's own text on failure."""
    env = {**os.environ, "DBT_USE_COLORS": "false", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        proc = subprocess.Popen(
            [*command, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        raise PrepareFailed(f"cannot start {command[0]} ({exc.strerror or exc}); check --dbt") from exc
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        print(f"    {line.rstrip()}", file=out, flush=True)
    code = proc.wait()
    if code != 0:
        tail = "\n".join(lines[-40:])
        raise PrepareFailed(f"`dbt {args[0]}` failed (exit code {code}):\n{tail}", exit_code=code)


def _step(name: str, action: Callable[[], Any], out: TextIO, detail: Callable[[Any], str] | None = None) -> Any:
    print(f"{name} ...", file=out, flush=True)
    started = time.monotonic()
    result = action()
    elapsed = time.monotonic() - started
    label = f"{name}: {detail(result)}" if detail else name
    print(f"{label} ... {format_seconds(elapsed)}", file=out, flush=True)
    return result


def format_seconds(seconds: float) -> str:
    """Wall time as people read it: one decimal under ten seconds, whole seconds above."""
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _project_target_path(project_dir: Path) -> str:
    import yaml

    from airflow_provider_idbt.dbt.yaml_files import read_yaml

    try:
        config = read_yaml(project_dir / "dbt_project.yml") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PrepareFailed(f"{project_dir / 'dbt_project.yml'} cannot be read: {exc}") from exc
    value = config.get("target-path") if isinstance(config, dict) else None
    return str(value) if isinstance(value, str) and "{{" not in value else "target"


def _write_index(manifest: Path) -> int:
    import json

    from airflow_provider_idbt.dbt.slim_index import write_slim_index
    from airflow_provider_idbt.errors import IdbtError

    try:
        index = write_slim_index(manifest)
        data = json.loads(index.read_text(encoding="utf-8"))
    except (IdbtError, OSError, ValueError) as exc:
        raise PrepareFailed(f"the slim index of {manifest} could not be written: {exc}") from exc
    return len(data.get("nodes") or {})


def upload_files(manifest: Path) -> list[Path]:
    """What goes to storage, the manifest last: a reader that sees the new manifest also finds its companions."""
    from airflow_provider_idbt.dbt.slim_index import SLIM_INDEX_FILE

    companions = [manifest.with_name(name) for name in (PARTIAL_PARSE_FILE, SLIM_INDEX_FILE)]
    return [path for path in companions if path.is_file()] + [manifest]


def storage_folder(uri: str, *, conn_id: str | None = None) -> Any:
    """The ObjectStoragePath of the folder ``uri`` names (a URI naming manifest.json means its folder)."""
    try:
        from airflow.sdk import ObjectStoragePath

        folder = ObjectStoragePath(uri, conn_id=conn_id)
        if folder.name.endswith(".json"):
            folder = folder.parent
        folder.fs  # noqa: B018 - resolves the filesystem (and its connection) now, with a clear error
    except Exception as exc:  # unknown scheme, provider not installed, bad connection
        raise PrepareFailed(f"--upload {uri}: cannot open it through ObjectStoragePath ({exc})") from exc
    return folder


def upload_to(files: Sequence[Path], folder: Any, *, uri: str) -> int:
    """Copy ``files`` into the storage ``folder`` (an ObjectStoragePath); return the bytes sent."""
    sent = 0
    try:
        fs = folder.fs
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        local = "file" in protocols
        if local:  # object stores have no folders to make
            Path(folder.path).mkdir(parents=True, exist_ok=True)
        for path in files:
            destination = f"{folder.path.rstrip('/')}/{path.name}"
            if local:
                # A rename inside the folder: a DAG parse reading it sees the old file or the new one.
                partial = f"{folder.path.rstrip('/')}/.{path.name}.uploading"
                fs.put_file(str(path), partial)
                os.replace(partial, destination)
            else:
                fs.put_file(str(path), destination)  # one PUT: object stores replace an object whole
            sent += path.stat().st_size
    except Exception as exc:  # each filesystem raises its SDK's own errors
        raise PrepareFailed(f"upload to {uri} failed ({type(exc).__name__}: {exc})") from exc
    return sent
