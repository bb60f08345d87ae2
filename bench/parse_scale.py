"""DAG-parse cost at scale: DbtIdentityTaskGroup beside the EmptyOperator floor and astronomer-cosmos ``DbtDag``.

Generated projects of 100 / 1,000 / 5,000 models (each with a test, and three seeds; ``dbt parse`` makes their
manifests) and, with ``--real-manifest``, a real project's manifest. Every build runs in a fresh interpreter with
bytecode caches, as a DAG-processor child parses a DAG file, and the three contenders are interleaved round by
round so that they share the machine's conditions. The slim index is present for the timed builds (the steady
state); the first build of a manifest, which writes the index, is timed apart. Writes its own section of
docs/performance.md (bench/parse_scale_report.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from bench import parse_scale_child as child
from bench.measure import Series, load_average
from bench.synthetic_project import DUCKDB_ENV, PROFILE_NAME, PROJECT_NAME, prepare

_REPO = Path(__file__).resolve().parents[1]
SLIM_INDEX = "idbt_index.json"
REAL_MANIFEST_ENV = "IDBT_BENCH_REAL_MANIFEST"
CONTENDERS = ("floor", "floor_direct", "idbt", "cosmos")
PROBE = "bench.parse_scale_probe"


@dataclass
class Subject:
    """One manifest under test, and what its contenders were measured at."""

    key: str
    label: str
    manifest: Path
    project_dir: Path
    profiles_dir: Path
    project_name: str
    profile: str
    target: str
    env: dict[str, str]
    counts: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    assets: int = 0
    build: dict[str, Series] = field(default_factory=lambda: {name: Series() for name in (*CONTENDERS, "first")})
    cpu: dict[str, Series] = field(default_factory=lambda: {name: Series() for name in (*CONTENDERS, "first")})
    # One probed build's CPU seconds per step (bench/parse_scale_probe.py).
    phases: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, Series] = field(default_factory=lambda: {name: Series() for name in CONTENDERS})
    index_bytes: int = 0

    def child_arg(self, graph: Path) -> str:
        return json.dumps(
            {
                "manifest": str(self.manifest),
                "project_dir": str(self.project_dir),
                "profiles_dir": str(self.profiles_dir),
                "project_name": self.project_name,
                "profile": self.profile,
                "target": self.target,
                "graph": str(graph),
            }
        )

    @property
    def manifest_bytes(self) -> int:
        return self.manifest.stat().st_size


@dataclass
class Run:
    """Everything one benchmark run measured."""

    subjects: list[Subject]
    processes: int
    first_builds: int
    imports: dict[str, Series] = field(default_factory=lambda: {name: Series() for name in (*CONTENDERS, "sdk")})
    modules: dict[str, int] = field(default_factory=dict)
    heavy: set[str] = field(default_factory=set)
    # CPU seconds to construct one task, per operator class (bench/parse_scale_probe.py).
    per_task: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    cosmos: bool = True
    real_name: str = ""
    real_note: str = ""
    load_before: str = ""
    load_after: str = ""
    # The first Asset of a process, per interpreter: its providers and what it cost (bench/parse_scale_probe.py).
    first_asset: dict[str, dict[str, Any]] = field(default_factory=dict)
    interpreters: dict[str, str] = field(default_factory=dict)


def _counts(manifest: Path) -> dict[str, int]:
    nodes = json.loads(manifest.read_text())["nodes"].values()
    kinds = [node["resource_type"] for node in nodes if node.get("config", {}).get("enabled", True)]
    return {kind: kinds.count(kind) for kind in ("model", "test", "seed", "snapshot")}


def synthetic(root: Path, models: int) -> Subject:
    print(f"[parse_scale] {models} models: generating the project and running dbt parse", flush=True)
    project = prepare(root / f"n{models}" / PROJECT_NAME, models, seed=False)
    return Subject(
        key=f"n{models}",
        label=f"generated, {models:,} models",
        manifest=project.manifest_path,
        project_dir=project.project_dir,
        profiles_dir=project.profiles_dir,
        project_name=PROJECT_NAME,
        profile=PROFILE_NAME,
        target="dev",
        env={DUCKDB_ENV: str(project.duckdb_path)},
    )


def real(manifest: Path, project_dir: Path | None, profiles_dir: Path | None, env: dict[str, str]) -> Subject:
    """A real project's compiled manifest; its project and profile names come from its own files."""
    manifest = manifest.resolve()
    project = (project_dir or manifest.parent.parent).resolve()
    profiles = (profiles_dir or project).resolve()
    profile = yaml.safe_load((project / "dbt_project.yml").read_text())["profile"]
    target = yaml.safe_load((profiles / "profiles.yml").read_text())[profile]["target"]
    name = json.loads(manifest.read_text())["metadata"]["project_name"]
    return Subject("real", "real project", manifest, project, profiles, name, profile, target, env)


class Runner:
    """Spawns the fresh interpreters: one shared bytecode cache and Airflow home, nothing from the repo's state."""

    def __init__(self, tmp: Path, cosmos_python: str | None) -> None:
        self.tmp = tmp
        self.cosmos_python = cosmos_python
        base = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        # An installed package has its bytecode; this machine sets PYTHONDONTWRITEBYTECODE for the repo.
        base.update(
            PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
            AIRFLOW_HOME=str(tmp / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
        )
        self.base_env = base

    def graph_file(self, subject: Subject) -> Path:
        return self.tmp / f"graph-{subject.key}.json"

    def __call__(
        self, mode: str, subject: Subject, module: str = "bench.parse_scale_child", python: str | None = None
    ) -> dict[str, Any]:
        python = python or (self.cosmos_python if mode == "cosmos" else sys.executable)
        assert python is not None
        proc = subprocess.run(
            [python, "-m", module, mode, subject.child_arg(self.graph_file(subject))],
            cwd=_REPO,
            env={**self.base_env, **subject.env},
            capture_output=True,
            text=True,
            timeout=900,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith(child.MARKER)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{mode} build of {subject.label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return json.loads(lines[-1].removeprefix(child.MARKER))


def _cosmos_python(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    if importlib.util.find_spec("cosmos") is not None:
        return sys.executable
    bench_python = _REPO / ".venv-bench" / "bin" / "python"
    return str(bench_python) if bench_python.exists() else None


def _record(run: Run, subject: Subject, data: dict[str, Any], name: str) -> None:
    mode = data["mode"]
    subject.build[name].add(data["build_s"])
    subject.cpu[name].add(data["build_cpu_s"])
    subject.tasks[mode] = data["tasks"]
    if name == "first":
        return
    subject.peak_rss[mode].add(data["peak_rss_mib"])
    run.imports[mode].add(data["import_s"])
    run.imports["sdk"].add(data["import_sdk_s"])
    run.modules[mode] = data["modules"]
    run.versions.update(data["versions"])
    if mode == "idbt":
        subject.assets = data["assets"]
        run.heavy |= set(data["heavy"])


def measure(run: Run, runner: Runner) -> None:
    """Warm up (bytecode, slim index, the floor's edge list), then interleave the contenders round by round."""
    for subject in run.subjects:
        print(f"[parse_scale] {subject.label}: edge list for the floor, slim index", flush=True)
        data = runner("graph", subject)
        run.heavy |= set(data["heavy"])
        if not data["assets"]:
            raise RuntimeError(f"{subject.label}: the group declared no Assets (profile not readable?)")
        subject.counts = _counts(subject.manifest)
        subject.index_bytes = (subject.manifest.parent / SLIM_INDEX).stat().st_size
    contenders = [name for name in CONTENDERS if name != "cosmos" or run.cosmos]
    for name in contenders:
        runner(name, run.subjects[0])  # fills the bytecode cache of what this contender imports
    for round_no in range(run.processes):
        print(f"[parse_scale] round {round_no + 1} of {run.processes}", flush=True)
        for subject in run.subjects:
            if round_no < run.first_builds:
                (subject.manifest.parent / SLIM_INDEX).unlink()
                _record(run, subject, runner("idbt", subject), "first")
            shift = round_no % len(contenders)
            for name in contenders[shift:] + contenders[:shift]:
                _record(run, subject, runner(name, subject), name)
    print("[parse_scale] where the group's build goes (probes)", flush=True)
    for subject in run.subjects:
        subject.phases = runner("phases", subject, PROBE)["phases_s"]
    run.per_task = runner("operators", run.subjects[0], PROBE)["per_task_s"]
    for label, python in run.interpreters.items():
        samples = [runner("first_asset", run.subjects[0], PROBE, python) for _ in range(3)]
        seconds = sorted(sample["first_asset_s"] for sample in samples)[1]
        run.first_asset[label] = {**samples[0], "first_asset_s": seconds}


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--real-env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def main(argv: list[str] | None = None) -> int:
    from bench import parse_scale_report as report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated model counts of generated projects")
    parser.add_argument("--processes", type=int, default=5, help="fresh interpreters per contender and manifest")
    parser.add_argument("--first-builds", type=int, default=3, help="builds that write the slim index, per manifest")
    parser.add_argument("--real-manifest", type=Path, default=os.environ.get(REAL_MANIFEST_ENV) or None)
    parser.add_argument("--real-project-dir", type=Path, help="default: the folder above the manifest's target/")
    parser.add_argument("--real-profiles-dir", type=Path, help="default: the project directory")
    parser.add_argument("--real-env", action="append", default=[], metavar="KEY=VALUE", help="for its profile")
    parser.add_argument("--real-name", default="", help="what the tables call the real project (repository, commit)")
    parser.add_argument("--real-note", default="", help="how its manifest was made, for the doc (packages, versions)")
    parser.add_argument("--cosmos-python", help="an interpreter with astronomer-cosmos (default: this or .venv-bench)")
    parser.add_argument(
        "--full-python",
        default=str(_REPO / ".venv" / "bin" / "python"),
        help="an interpreter with more providers installed (the repo's dev virtualenv: Google, Amazon, Azure), "
        "for the first-Asset cost beside this interpreter's",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args(argv)
    if args.first_builds > args.processes:
        parser.error("--first-builds cannot exceed --processes")
    cosmos_python = _cosmos_python(args.cosmos_python)
    if cosmos_python is None:
        print("[parse_scale] astronomer-cosmos not found (make bench-install): its column is left out", flush=True)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="idbt-bench-parse-scale-") as tmp_name:
        tmp = Path(tmp_name)
        subjects = [synthetic(tmp, int(size)) for size in args.sizes.split(",") if size]
        if args.real_manifest:
            subjects.append(
                real(args.real_manifest, args.real_project_dir, args.real_profiles_dir, _env_pairs(args.real_env))
            )
        run = Run(subjects, args.processes, args.first_builds, cosmos=cosmos_python is not None)
        run.versions["dbt-core (dbt parse)"] = _version("dbt-core")
        run.real_name, run.real_note, run.load_before = args.real_name, args.real_note, load_before
        run.interpreters = {"this benchmark's virtualenv": sys.executable}
        if args.full_python and Path(args.full_python).exists() and Path(args.full_python) != Path(sys.executable):
            run.interpreters["the dev virtualenv"] = args.full_python
        measure(run, Runner(tmp, cosmos_python))
        run.load_after = load_average()
        if run.heavy:
            raise AssertionError(f"DAG parsing imported heavy packages: {', '.join(sorted(run.heavy))}")
        text = report.render(run)
    print(text)
    print(json.dumps({s.key: {k: asdict(v)["values"] for k, v in s.build.items()} for s in run.subjects}))
    if not args.no_write:
        report.write(text)
        print(f"wrote {report.DOC.relative_to(_REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
