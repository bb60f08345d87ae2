"""Per-model DAGs under a real scheduler, side by side with astronomer-cosmos: trigger to done, interleaved rounds.

Each scenario is one Airflow deployment (scheduler, dag-processor, triggerer, api-server, LocalExecutor) whose dags
folder holds the same project's graph once per contender; rounds trigger the contenders one at a time in rotating
order, so that they share the machine's conditions. Per-model overhead = (DAG run wall - floor wall) / models.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airflow_provider_idbt.dbt.warm import stop_workers, worker_pids
from bench import competitor_dags as dags
from bench.live_airflow import LiveAirflow, RunTimes
from bench.measure import Series, load_average
from bench.process_memory import TaskMemory, TaskTreeSampler
from bench.synthetic_project import DUCKDB_ENV, PG_DATABASE_ENV, PG_HOST, PG_USER, SyntheticProject, prepare, run_dbt

AUDIENCE = "idbt-bench"
EXAMPLE_PROJECT = Path(__file__).resolve().parents[1] / "dags" / "example_project"
EXAMPLE_NAME = "idbt_example"  # its dbt project and profile name
METADATA_DB = "idbt_bench_airflow"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    models: int
    warehouse: str
    slots: int
    rounds: int
    contenders: tuple[dags.Contender, ...]
    warehouse_seconds: float = 0.0
    one_task_repeats: int = 0
    # "synthetic" (bench/synthetic_project.py) or "example" (the repository's dags/example_project)
    project: str = "synthetic"

    @property
    def metadata(self) -> str:
        return "SQLite" if self.slots == 1 else "PostgreSQL"


@dataclass
class ContenderFigures:
    contender: dags.Contender
    dag_wall: Series = field(default_factory=Series)
    task_wall: Series = field(default_factory=Series)
    memory: TaskMemory = field(default_factory=TaskMemory)
    one_task: Series = field(default_factory=Series)


@dataclass
class ScenarioFigures:
    scenario: Scenario
    figures: dict[str, ContenderFigures]
    one_run: Series = field(default_factory=Series)
    setup_s: float = 0.0
    load_before: str = ""
    load_after: str = ""

    def overhead(self, key: str) -> Series:
        """Per-model overhead of ``key`` in each round: (its DAG wall - the floor's in that round) / models."""
        floor = self.figures[dags.FLOOR.key].dag_wall.values
        mine = self.figures[key].dag_wall.values
        return Series([(m - f) / self.scenario.models for m, f in zip(mine, floor, strict=True)])


ALL_LOCAL = (dags.FLOOR, dags.IDBT_WARM, dags.IDBT_SUBPROCESS, dags.COSMOS_LOCAL, dags.COSMOS_WATCHER)
SCENARIOS = {
    "example": Scenario(
        "example",
        "the example project (5 models), one slot (DuckDB, SQLite metadata)",
        5,
        "duckdb",
        1,
        3,
        ALL_LOCAL,
        project="example",
    ),
    "smoke": Scenario("smoke", "3 models, one slot (a quick check of the harness)", 3, "duckdb", 1, 1, ALL_LOCAL, 0, 1),
    "smoke4": Scenario(
        "smoke4", "8 models, 4 slots, PostgreSQL (a quick check of the harness)", 8, "postgres", 4, 1, ALL_LOCAL
    ),
    "serial10": Scenario(
        "serial10", "10 models, one slot (DuckDB, SQLite metadata)", 10, "duckdb", 1, 3, ALL_LOCAL, one_task_repeats=3
    ),
    "parallel100": Scenario(
        "parallel100", "100 models, 4 slots (PostgreSQL warehouse and metadata)", 100, "postgres", 4, 2, ALL_LOCAL
    ),
    "parallel100w": Scenario(
        "parallel100w",
        "100 models, 4 slots, 1 s of warehouse time per model (PostgreSQL)",
        100,
        "postgres",
        4,
        1,
        (dags.FLOOR, dags.IDBT_WARM, dags.COSMOS_LOCAL),
        warehouse_seconds=1.0,
    ),
    "parallel1000": Scenario(
        "parallel1000",
        "1,000 models, 4 slots (PostgreSQL warehouse and metadata)",
        1000,
        "postgres",
        4,
        1,
        (dags.FLOOR, dags.IDBT_WARM),
    ),
}


def _example_project(root: Path) -> SyntheticProject:
    """A copy of the repository's example project, parsed and seeded like the generated ones."""
    destination = root / "project_example"
    shutil.copytree(EXAMPLE_PROJECT, destination, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
    project = SyntheticProject(destination, destination / "warehouse.duckdb", (), {})
    run_dbt(project, "parse", "--quiet")
    run_dbt(project, "seed", "--quiet")
    manifest = json.loads(project.manifest_path.read_text())
    models = tuple(n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model")
    return replace(project, models=models)


def _prepare_project(root: Path, scenario: Scenario) -> SyntheticProject:
    if scenario.project == "example":
        return _example_project(root)
    options: dict[str, Any] = {"adapter": scenario.warehouse, "tests": False}
    if scenario.warehouse == "postgres":
        options.update(pg_database=f"idbt_bench_{scenario.key}", warehouse_seconds=scenario.warehouse_seconds)
    return prepare(root / f"project_{scenario.key}", scenario.models, **options)


def _metadata_url(scenario: Scenario) -> str | None:
    if scenario.slots == 1:
        return None
    from bench.synthetic_project import create_pg_database

    create_pg_database(METADATA_DB)
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:5432/{METADATA_DB}"


def _one_dbt_build(project: SyntheticProject, threads: int) -> float:
    """The baseline: the whole project as one `dbt build` of its models (seeds loaded beforehand) with ``threads``."""
    started = time.perf_counter()
    excluded = ("--exclude", "resource_type:seed", "resource_type:test")  # no contender runs tests or seeds
    # A target directory of its own: writing the deployed target/manifest.json would be a new deployment, and
    # the warm workers would retire and start again in the next round.
    with tempfile.TemporaryDirectory(prefix="idbt-bench-build-") as target:
        shutil.copy(project.target_dir / "partial_parse.msgpack", target)
        run_dbt(project, "build", *excluded, "--threads", str(threads), "--target-path", target, "--quiet")
    return time.perf_counter() - started


def _check(run: RunTimes, contender: dags.Contender, expected: int, home: Path) -> None:
    """A contender that did not run is an error, never a figure measured against nothing."""
    done = [t for t in run.tasks if t.state == "success"]
    if run.state != "success" or len(done) < expected:
        failed = sorted(t.task_id for t in run.tasks if t.state != "success")
        raise RuntimeError(
            f"{contender.label}: run {run.run_id} ended {run.state} with {len(done)} of {expected} tasks done "
            f"(not done: {failed[:10]}); task logs under {home / 'logs'}"
        )


def run_scenario(scenario: Scenario, root: Path, secret_env: dict[str, str]) -> ScenarioFigures:
    load_before = load_average()
    started = time.perf_counter()
    print(f"[scheduler] {scenario.title}: preparing the project", flush=True)
    project = _prepare_project(root, scenario)
    key = scenario.key
    folder = root / f"dags_{key}"
    folder.mkdir()
    dag_ids = []
    one_model = project.models[0] if scenario.one_task_repeats else None
    names = {"project": EXAMPLE_NAME, "profile": EXAMPLE_NAME} if scenario.project == "example" else {}
    for contender in scenario.contenders:
        (folder / f"{contender.dag_id(key)}.py").write_text(contender.source(key, scenario.slots, **names))
        dag_ids.append(contender.dag_id(key))
        if one_model and not contender.reference:
            path = folder / f"{contender.dag_id(key, one_model)}.py"
            path.write_text(contender.source(key, 1, one_model, **names))
            dag_ids.append(contender.dag_id(key, one_model))
    warm_dir = root / f"warm_{key}"
    env = {
        **secret_env,
        **project.env(),
        f"IDBT_BENCH_PROJECT_DIR_{key.upper()}": str(project.project_dir),
        "IDBT_WARM_DIR": str(warm_dir),
        "AIRFLOW__COSMOS__CACHE_DIR": str(root / f"cosmos_cache_{key}"),
    }
    env = {k: v for k, v in env.items() if k.startswith(("IDBT_", "AIRFLOW_", DUCKDB_ENV, PG_DATABASE_ENV))}
    airflow = LiveAirflow(
        home=root / f"airflow_{key}",
        dags_folder=folder,
        extra_env=env,
        sql_alchemy_conn=_metadata_url(scenario),
        parallelism=scenario.slots,
    )
    result = ScenarioFigures(scenario, {c.key: ContenderFigures(c) for c in scenario.contenders})
    try:
        airflow.start()
        airflow.airflow("pools", "set", dags.POOL, str(scenario.slots), "benchmark writers")
        airflow.wait_for_dags(dag_ids)
        result.setup_s = time.perf_counter() - started
        timeout = 60 + scenario.models * 30
        for number in range(scenario.rounds):
            order = (
                scenario.contenders[number % len(scenario.contenders) :]
                + scenario.contenders[: number % len(scenario.contenders)]
            )
            for contender in order:
                figures = result.figures[contender.key]
                dag_id = contender.dag_id(key)
                print(f"[scheduler] {key} round {number + 1}: {contender.label}", flush=True)
                sampler = TaskTreeSampler(airflow.scheduler_pid, lambda: worker_pids(warm_dir))
                sampler.start()
                airflow.trigger(dag_id, f"round_{number}")
                run = airflow.wait_for_run(dag_id, f"round_{number}", timeout)
                memory = sampler.stop()
                _check(run, contender, scenario.models, airflow.home)
                figures.dag_wall.add(run.wall)
                for task in run.tasks:
                    figures.task_wall.add(task.wall)
                figures.memory.per_task.values.extend(memory.per_task.values)
                figures.memory.warm_worker.values.extend(memory.warm_worker.values)
                print(f"[scheduler]   {run.wall:.1f} s trigger to done", flush=True)
            result.one_run.add(_one_dbt_build(project, scenario.slots))
            print(f"[scheduler]   one dbt build: {result.one_run.values[-1]:.1f} s", flush=True)
        for repeat in range(scenario.one_task_repeats):
            for contender in scenario.contenders:
                if contender.reference or one_model is None:
                    continue
                dag_id = contender.dag_id(key, one_model)
                airflow.trigger(dag_id, f"one_{repeat}")
                run = airflow.wait_for_run(dag_id, f"one_{repeat}", 300)
                _check(run, contender, 1, airflow.home)
                result.figures[contender.key].one_task.add(run.wall)
    finally:
        airflow.stop()
        stop_workers(warm_dir)
    result.load_before, result.load_after = load_before, load_average()
    return result


def run(keys: list[str], saved: Path | None = None) -> list[ScenarioFigures]:
    """Every scenario of ``keys`` with one dev identity provider issuing the idbt tasks' tokens.

    With ``saved``, the figures of every finished scenario are kept there (pickle, our own file) as they come, so a
    long run that stops late loses only its last scenario; `--render` draws the page from such files.
    """
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    secret = os.urandom(16).hex()
    client = DevClient(
        client_id="bench-runner",
        client_secret=secret,
        subject="svc-bench",
        groups=("analytics",),
        audiences=(AUDIENCE,),
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="idbt-bench-scheduler-") as tmp:
        with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:
            conn = json.dumps(idp.connection(client))
            secret_env = {"IDBT_ALLOW_DEV_IDP": "1", f"AIRFLOW_CONN_{dags.CONN_ID.upper()}": conn}
            for key in keys:
                results.append(run_scenario(SCENARIOS[key], Path(tmp), secret_env))
                if saved is not None:
                    saved.write_bytes(pickle.dumps(_load(saved) + results[-1:]))
    return results


def _load(saved: Path) -> list[ScenarioFigures]:
    return list(pickle.loads(saved.read_bytes())) if saved.exists() else []


def _cosmos_installed() -> None:
    try:
        import airflow  # noqa: F401  (cosmos imports Airflow's settings first)
        import cosmos  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"astronomer-cosmos is not installed in this interpreter ({exc}): run `make bench`, which installs it "
            "in the benchmark's own virtualenv"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scenarios",
        default=",".join(k for k in SCENARIOS if not k.startswith("smoke")),
        help=f"of {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    parser.add_argument("--saved", type=Path, help="keep each finished scenario's figures in this file")
    parser.add_argument(
        "--render", nargs="+", type=Path, metavar="SAVED", help="run nothing: write the page from these --saved files"
    )
    args = parser.parse_args(argv)
    _cosmos_installed()
    # A stopped benchmark still stops the Airflow services and warm workers it started (the `finally` blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.render:
        # A scenario saved in several files: the later file's run wins; the page keeps SCENARIOS' order.
        by_key = {result.scenario.key: result for path in args.render for result in _load(path)}
        results = [by_key[key] for key in SCENARIOS if key in by_key]
    else:
        if args.saved is not None and args.saved.exists():
            args.saved.unlink()
        results = run(args.scenarios.split(","), args.saved)
    from bench import scheduler_report

    charts = [] if args.no_write else scheduler_report.draw(results)
    text = scheduler_report.render(results, charts)
    print(text)
    if not args.no_write:
        scheduler_report.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
