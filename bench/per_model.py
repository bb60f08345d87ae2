"""Per-model cost side by side: one `dbt run`, a dbt CLI per model, the provider's runner with/without partial parse."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.profiles import project_profile_name, render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.dbt.warm import WarmRunner, WarmSettings, stop_workers, worker_pids
from bench.measure import Sample, Series, load_average, table, timed
from bench.synthetic_project import DUCKDB_ENV, PROJECT_NAME, SyntheticProject, dbt_command, prepare

# dbt's messages when it cannot reuse a partial parse file (dbt 1.x, text log format).
_FULL_PARSE_MARKERS = ("Unable to do partial parsing", "Starting full parse", "Partial parse save file not found")
_FAKE_TOKEN = "bench-token-not-a-secret"


@dataclass
class Method:
    """One way of running one model (or, for the whole-project row, all of them)."""

    key: str
    label: str
    wall: Series = field(default_factory=Series)
    cpu: Series = field(default_factory=Series)
    # dbt's own elapsed_time (after start-up and parse): the model's SQL plus dbt's bookkeeping.
    dbt_elapsed: Series = field(default_factory=Series)
    full_parses: int = 0
    runs: int = 0

    def record(self, sample: Sample, elapsed: float | None, full_parse: bool) -> None:
        self.wall.add(sample.wall)
        self.cpu.add(sample.cpu)
        if elapsed is not None:
            self.dbt_elapsed.add(elapsed)
        self.runs += 1
        self.full_parses += int(full_parse)


def _full_parse(lines: list[str]) -> bool:
    return any(marker in line for line in lines for marker in _FULL_PARSE_MARKERS)


def _elapsed(run_results: Path) -> float | None:
    try:
        return float(json.loads(run_results.read_text())["elapsed_time"])
    except (OSError, ValueError, KeyError):
        return None


class Bench:
    """Holds the project and the deployed artifacts (manifest + partial parse file, as `dbt parse` left them)."""

    def __init__(self, project: SyntheticProject, work: Path) -> None:
        self.project = project
        self.work = work
        self.deployed = work / "deployed_target"
        shutil.copytree(project.target_dir, self.deployed)
        self.generated_profiles = write_profiles_dir(
            # As the operator generates it: named after the project's profile, so no --profile/--target flag.
            render_profile(
                "duckdb",
                {"path": str(project.duckdb_path)},
                project_profile_name(project.project_dir) or "idbt",
                "idbt",
            ),
            work / "generated_profiles",
        )
        self._runs = 0
        self.warm_settings = WarmSettings(work / "warm")
        self.worker_pid = 0

    def cli(self, *args: str) -> tuple[Sample, float | None, bool]:
        """The dbt CLI in the project directory, as a person or a cosmos-style local task runs it."""
        with timed() as sample:
            proc = subprocess.run(
                dbt_command(self.project, *args),
                cwd=self.project.project_dir,
                env=self.project.env(),
                capture_output=True,
                text=True,
                timeout=900,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        elapsed = _elapsed(self.project.target_dir / "run_results.json")
        return sample, elapsed, _full_parse(proc.stdout.splitlines())

    def runner(
        self, model: str, *, partial_parse: bool, generated_profile: bool = False, warm: bool = False
    ) -> tuple[Sample, float | None, bool]:
        """The provider's runner with a private work dir per run, as the operator calls it.

        ``warm``: a WarmRunner (the host's warm worker forks the dbt child); CPU then also counts the worker's
        reaped children, since the forked child is not a child of this process.
        """
        self._runs += 1
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=self.work))
        lines: list[str] = []
        invocation = DbtInvocation(
            project_dir=str(self.project.project_dir),
            profiles_dir=str(self.generated_profiles if generated_profile else self.project.profiles_dir),
            select=f"fqn:{PROJECT_NAME}.{_layer_dir(model)}.{model},package:{PROJECT_NAME}",
            target_path=str(workdir / "target"),
            log_path=str(workdir / "logs"),
            partial_parse_from=str(self.deployed) if partial_parse else None,
            # A comment that differs per task, as the operator's does: it must not defeat partial parsing.
            env={DUCKDB_ENV: str(self.project.duckdb_path), "IDBT_QUERY_COMMENT": f"idbt bench run {self._runs}"},
        )
        runner = self.warm_runner() if warm else SubprocessRunner()
        worker_cpu = _children_cpu(self.worker_pid) if warm else 0.0
        try:
            with timed() as sample:
                result = runner.run(invocation, {"DBT_ENV_SECRET_IDBT_TOKEN": _FAKE_TOKEN}, lines.append)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if warm:
            sample.cpu += _children_cpu(self.worker_pid) - worker_cpu
        if result.status != "success" or len(result.nodes) != 1:
            raise RuntimeError(f"runner on {model}: {result.status} {result.message}\n" + "\n".join(lines[-20:]))
        return sample, result.elapsed, _full_parse(lines)

    def warm_runner(self) -> WarmRunner:
        def fell_back(reason: str) -> None:
            raise RuntimeError(f"the warm worker could not take a benchmark run: {reason}")

        # The deployed copy: the CLI rows' `dbt run` rewrites target/manifest.json, which would retire the worker.
        manifest = str(self.deployed / "manifest.json")
        return WarmRunner(manifest, adapter="duckdb", settings=self.warm_settings, on_fallback=fell_back)

    def start_warm_worker(self, model: str) -> float:
        """Start the warm worker with one (untimed per model) run; the wall time of that first run."""
        sample, _, _ = self.runner(model, partial_parse=True, generated_profile=True, warm=True)
        (self.worker_pid,) = worker_pids(self.warm_settings.directory)
        return sample.wall

    def stop_warm_worker(self) -> None:
        stop_workers(self.warm_settings.directory)


def _children_cpu(pid: int) -> float:
    """User + system seconds of the reaped children of ``pid`` (``/proc/<pid>/stat`` cutime, cstime)."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _layer_dir(model: str) -> str:
    return {"stg": "staging", "int": "intermediate", "mart": "marts"}[model.split("_", 1)[0]]


def sample_models(models: tuple[str, ...], k: int) -> list[str]:
    """``k`` models spread evenly over the list (so every layer is represented)."""
    if k >= len(models):
        return list(models)
    step = len(models) / k
    return [models[int(i * step + step / 2)] for i in range(k)]


def dbt_import_floor(repeats: int) -> Series:
    """Wall time of a Python process that only imports dbt's runner: the floor under every per-model process."""
    floor = Series()
    for _ in range(repeats):
        with timed() as sample:
            subprocess.run([sys.executable, "-c", "import dbt.cli.main"], check=True, capture_output=True)
        floor.add(sample.wall)
    return floor


def run(n: int = 30, sample_size: int = 8, full_runs: int = 3) -> dict[str, Any]:
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="idbt-bench-model-") as tmp:
        print(f"[per_model] N={n}: generating, parsing and seeding the project", flush=True)
        project = prepare(Path(tmp) / PROJECT_NAME, n)
        bench = Bench(project, Path(tmp))
        methods = {
            "a": Method("a", "one `dbt run` of the whole project (CLI), per model"),
            "b": Method("b", "one `dbt run --select <model>` CLI process per model (cosmos-style local)"),
            "c": Method("c", "idbt SubprocessRunner per model, no partial parse file"),
            "d": Method("d", "idbt SubprocessRunner per model, `partial_parse_from` (operator default)"),
            "d2": Method("d2", "as (d), with a generated profile (`profile_args`, as the operator writes it)"),
            "w": Method("w", 'as (d2), `execution_mode="warm"`: a child forked by the warm dbt worker'),
        }
        per_model: dict[str, Callable[[str], tuple[Sample, float | None, bool]]] = {
            "b": lambda m: bench.cli("run", "--select", m),
            "c": lambda m: bench.runner(m, partial_parse=False),
            "d": lambda m: bench.runner(m, partial_parse=True),
            "d2": lambda m: bench.runner(m, partial_parse=True, generated_profile=True),
            "w": lambda m: bench.runner(m, partial_parse=True, generated_profile=True, warm=True),
        }
        chosen = sample_models(project.models, sample_size)
        warm_start = bench.start_warm_worker(chosen[0])
        full_at = {int(i * len(chosen) / full_runs) for i in range(full_runs)}
        order = list(per_model)
        print(f"[per_model] {len(chosen)} models x {len(order)} methods, {full_runs} full runs interleaved", flush=True)
        for i, model in enumerate(chosen):
            if i in full_at:
                methods["a"].record(*bench.cli("run"))
            # Rotate the order so that no method always runs right after the same neighbour.
            for key in order[i % len(order) :] + order[: i % len(order)]:
                methods[key].record(*per_model[key](model))
            print(f"[per_model]   {i + 1}/{len(chosen)} {model}", flush=True)
        bench.stop_warm_worker()
        floor = dbt_import_floor(3)
    report = render(methods, n, len(chosen), floor, load_before, load_average(), warm_start)
    print(report)
    return {"markdown": report, "methods": methods, "models": n, "floor": floor}


def _per_model_full(method: Method, n: int) -> tuple[float, float]:
    return method.wall.median / n, method.cpu.median / n


def render(
    methods: dict[str, Method],
    n: int,
    sampled: int,
    floor: Series,
    load_before: str,
    load_after: str,
    warm_start: float,
) -> str:
    full_wall, full_cpu = _per_model_full(methods["a"], n)
    rows = [
        [
            "(a)",
            methods["a"].label,
            f"{full_wall:.2f} s (whole run {methods['a'].wall.fmt()})",
            f"{full_cpu:.2f} s",
            "-",
            "1.0x",
            f"{methods['a'].full_parses}/{methods['a'].runs}",
        ]
    ]
    for key in ("b", "c", "d", "d2", "w"):
        m = methods[key]
        rows.append(
            [
                f"({key})",
                m.label,
                m.wall.fmt(),
                m.cpu.fmt(),
                f"{m.wall.median - full_wall:+.2f} s",
                f"{m.wall.median / full_wall:.1f}x",
                f"{m.full_parses}/{m.runs}",
            ]
        )
    main = table(["", "method", "wall per model", "CPU per model", "overhead vs (a)", "vs (a)", "full parses"], rows)
    breakdown = table(
        ["", "wall per model", "dbt elapsed_time (SQL + bookkeeping)", "start-up + parse (wall - elapsed)"],
        [
            [
                f"({key})",
                f"{methods[key].wall.median:.2f} s",
                f"{methods[key].dbt_elapsed.median:.2f} s",
                f"{methods[key].wall.median - methods[key].dbt_elapsed.median:.2f} s",
            ]
            for key in ("b", "c", "d", "d2", "w")
        ],
    )
    return "\n\n".join(
        [
            f"Project: {n} models (synthetic, DuckDB, 1 thread). Per-model rows: median (min-max) over {sampled} "
            "models spread over the three layers, the methods interleaved model by model in rotating order; "
            f"(a): {methods['a'].runs} whole-project runs interleaved with them, divided by {n}. "
            "CPU = user + system time of the dbt process (less sensitive to the other jobs on the machine). "
            '"full parses" counts runs in which dbt said it could not reuse a partial parse file.',
            main,
            "Where the time of one per-model process goes (medians):",
            breakdown,
            f"(w): the warm worker's own start (import dbt, parse once, warm-up) plus the first model took "
            f"{warm_start:.1f} s, once per host and deployed manifest, before the timed runs. "
            f"Floor: a Python process that only imports `dbt.cli.main` takes {floor.fmt()} wall. "
            f"Load average (1/5/15 min) before / after: {load_before} -> {load_after}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--models", type=int, default=30)
    parser.add_argument("--sample", type=int, default=8, help="models timed per method")
    parser.add_argument("--full-runs", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.models, args.sample, args.full_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
