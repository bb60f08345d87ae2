"""Project hooks per model task vs once per DAG run: the hooks project on PostgreSQL (a 2 s on-run-start hook).

`python -m bench.run_hooks [--models N] [--modes subprocess,warm] [--no-write]` times N one-model tasks run one
after another through the provider's runners (what a task pays for dbt; no Airflow around it), three ways:
`per_task` (every model runs every hook, dbt's default), `once` (an on-run-start task, N models without hooks,
an on-run-end task) and `auto` (what hoist_plan picks for this project: on-run-start once, on-run-end, which
reads `results`, in every model). A fourth row runs the project without hooks, with and without the
parse-then-hand-over path a run_hooks=False run takes in a new process, to show what that path costs. It prints
the figures and writes its section of docs/performance-hooks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_idbt.dbt.results import RunResult
from airflow_provider_idbt.dbt.run_hooks import hoist_plan, hook_records
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.dbt.warm import WarmRunner, WarmSettings, stop_workers
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR
from bench.doc_sections import write_section
from bench.measure import Series, load_average, machine_facts, table, timed
from bench.synthetic_project import PG_HOST, PG_USER, create_pg_database, dbt_executable

REPO = Path(__file__).resolve().parents[1]
HOOKS_PROJECT = REPO / "tests" / "fixtures" / "hooks_project"
DOC = REPO / "docs" / "performance-hooks.md"
BEGIN = "<!-- bench/run_hooks.py: begin (generated; do not edit by hand) -->"
END = "<!-- bench/run_hooks.py: end -->"
DATABASE = "idbt_bench_hooks"
_FAKE_TOKEN = "bench-token-not-a-secret"  # trust authentication: the server ignores it


@dataclass
class Scenario:
    key: str
    label: str
    per_model: Series = field(default_factory=Series)
    hook_tasks: Series = field(default_factory=Series)
    total: float = 0.0


def prepare(root: Path, n: int, *, hooks: bool) -> Path:
    """A copy of the hooks project with ``n`` models, its package installed and parsed for PostgreSQL."""
    project = root / ("idbt_hooks" if hooks else "idbt_hooks_without")
    shutil.copytree(HOOKS_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    for old in (project / "models").glob("*.sql"):
        old.unlink()
    for i in range(n):
        (project / "models" / f"model_{i:03d}.sql").write_text(f"select {i} as id, 'model {i}' as name\n")
    if not hooks:
        for yml in (project / "dbt_project.yml", project / "tracker" / "dbt_project.yml"):
            yml.write_text(re.sub(r"^on-run-(start|end):\n(  .*\n)+", "", yml.read_text(), flags=re.M))
    env = {"IDBT_PG_DB": DATABASE, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for args in (("deps",), ("parse", "--target", "postgres")):
        subprocess.run(
            [dbt_executable(), *args, "--project-dir", str(project), "--profiles-dir", str(project), "--quiet"],
            cwd=project,
            env={**_base_env(), **env},
            check=True,
            capture_output=True,
        )
    return project


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}


class Tasks:
    """Runs one-node dbt invocations of a project as tasks would, in a new process or the warm worker."""

    def __init__(self, project: Path, mode: str, work: Path) -> None:
        self.project, self.mode, self.work = project, mode, work
        self.runs = 0
        self.fallbacks: list[str] = []

    def runner(self) -> SubprocessRunner:
        if self.mode == "subprocess":
            return SubprocessRunner()
        manifest = str(self.project / "target" / "manifest.json")
        settings = WarmSettings(self.work / "warm", idle_timeout=600)
        return WarmRunner(manifest, adapter="postgres", settings=settings, on_fallback=self.fallbacks.append)

    def run(self, select: str = "", **kwargs: object) -> float:
        self.runs += 1
        run_dir = self.work / f"run{self.runs}"
        invocation = DbtInvocation(
            project_dir=str(self.project),
            profiles_dir=str(self.project),
            select=select,
            target_path=str(run_dir / "target"),
            log_path=str(run_dir / "logs"),
            target="postgres",
            env={"IDBT_PG_DB": DATABASE},
            partial_parse_from=str(self.project / "target"),
            **kwargs,  # type: ignore[arg-type]
        )
        lines: list[str] = []
        with timed() as sample:
            result: RunResult = self.runner().run(invocation, {TOKEN_ENV_VAR: _FAKE_TOKEN}, lines.append)
        shutil.rmtree(run_dir, ignore_errors=True)
        if result.status != "success":
            raise SystemExit(f"bench: a {self.mode} run failed ({result.status}):\n" + "\n".join(lines[-30:]))
        return sample.wall


def measure(project: Path, bare: Path, models: list[str], mode: str, work: Path) -> list[Scenario]:
    tasks = Tasks(project, mode, work / mode)
    records = hook_records(json.loads((project / "target" / "manifest.json").read_text()))
    auto = hoist_plan(records, "auto")
    scenarios = [
        Scenario("per_task", "hooks in every model task (dbt's default, run_hooks='per_task')"),
        Scenario("once", "hooks once: on-run-start task, models with run_hooks=False, on-run-end task"),
        Scenario("auto", f"run_hooks='auto': {', '.join(auto.once)} once, {', '.join(auto.per_task)} per task"),
    ]
    tasks.run(models[0], run_hooks=False)  # the warm worker starts here, and the warehouse's schema exists
    runs: dict[str, Callable[[str], float]] = {
        "per_task": lambda model: tasks.run(model),
        "once": lambda model: tasks.run(model, run_hooks=False),
        "auto": lambda model: tasks.run(model, run_hooks=auto.model_task_hooks),
    }
    for scenario in scenarios:
        hook_types = {"per_task": (), "once": auto.once + auto.per_task, "auto": auto.once}[scenario.key]
        started = time.perf_counter()
        if "on-run-start" in hook_types:
            scenario.hook_tasks.add(tasks.run(command="hooks", run_hooks=("on-run-start",)))
        for model in models:
            scenario.per_model.add(runs[scenario.key](model))
        if "on-run-end" in hook_types:
            scenario.hook_tasks.add(tasks.run(command="hooks", run_hooks=("on-run-end",)))
        scenario.total = time.perf_counter() - started
    # What the parse-then-hand-over path of a run_hooks=False run costs by itself: a project without hooks.
    plain = Tasks(bare, mode, work / f"{mode}-bare")
    plain.run(models[0])
    direct = Scenario("bare", "project without hooks, dbt's own run (run_hooks=True)")
    handed = Scenario("bare_handed", "project without hooks, run_hooks=False (parse, then the manifest handed over)")
    for model in models:
        direct.per_model.add(plain.run(model))
        handed.per_model.add(plain.run(model, run_hooks=False))
    direct.total, handed.total = sum(direct.per_model.values), sum(handed.per_model.values)
    if tasks.fallbacks or plain.fallbacks:
        raise SystemExit(f"bench: the warm worker did not take every run: {tasks.fallbacks + plain.fallbacks}")
    stop_workers(work / mode / "warm")
    stop_workers(work / f"{mode}-bare" / "warm")
    return [*scenarios, direct, handed]


def report(results: dict[str, list[Scenario]], n: int, plan_reasons: tuple[str, ...], took: float) -> str:
    rows = []
    for mode, scenarios in results.items():
        for s in scenarios:
            hooks = s.hook_tasks.fmt() if s.hook_tasks.values else "-"
            rows.append([mode, s.label, s.per_model.fmt(), hooks, f"{s.total:.1f} s"])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        BEGIN,
        f"Generated by `python -m bench.run_hooks --models {n}` on {when} in {took:.0f} s; load average at the "
        f"end {load_average()} (1/5/15 min; five engineers share this machine's cores).",
    ]
    facts = machine_facts()
    lines.append(
        f"{facts['CPU cores (os.cpu_count)']} cores ({facts['CPU']}), Python {facts['Python']}, dbt-core "
        f"{facts['dbt-core']}, PostgreSQL on 127.0.0.1. Tasks run one after another; wall-clock seconds, median "
        '(min-max, n). "total" is the whole sequence: hook tasks and every model.'
    )
    header = ["mode", "how", "wall per model task", "wall per hook task", f"total for {n} models"]
    lines.append(table(header, rows))
    for mode, scenarios in results.items():
        by = {s.key: s for s in scenarios}
        saved = by["per_task"].per_model.median - by["once"].per_model.median
        handover = by["bare_handed"].per_model.median - by["bare"].per_model.median
        lines.append(
            f"- {mode}: the hooks cost each model task {saved:.2f} s (per_task minus once, median); for {n} models "
            f"the DAG run's dbt time went from {by['per_task'].total:.1f} s to {by['once'].total:.1f} s (once) and "
            f"{by['auto'].total:.1f} s (auto). Parsing first and handing dbt the manifest costs {handover:+.2f} s "
            "per model against dbt's own run on the same hookless project."
        )
    lines.append("What `auto` decided for this project (hoist_plan):")
    lines += [f"- {reason}" for reason in plan_reasons]
    lines.append(END)
    return "\n\n".join(lines)


def write(text: str, doc: Path = DOC) -> None:
    write_section(doc, text, BEGIN, END, title="Project hooks: performance")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--modes", default="subprocess,warm")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    clock = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="idbt-bench-hooks-"))
    try:
        create_pg_database(DATABASE)
        subprocess.run(
            ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", DATABASE, "-qc", "create schema analytics"], check=True
        )
        project, bare = prepare(root, args.models, hooks=True), prepare(root, args.models, hooks=False)
        models = [f"model_{i:03d}" for i in range(args.models)]
        reasons = hoist_plan(hook_records(json.loads((project / "target" / "manifest.json").read_text())), "auto")
        results = {mode: measure(project, bare, models, mode, root) for mode in args.modes.split(",")}
        text = report(results, args.models, reasons.reasons, time.perf_counter() - clock)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(text)
    if not args.no_write:
        write(text)
        print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
