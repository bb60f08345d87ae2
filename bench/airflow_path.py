"""Per-model cost through Airflow: a real DAG run of DbtIdentityTaskGroup with supervised task processes."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.dbt.warm import stop_workers
from bench.measure import Series, load_average, table
from bench.synthetic_project import DUCKDB_ENV, PROJECT_NAME, prepare

DAG_ID = "idbt_bench"
NOOP_DAG_ID = "idbt_bench_noop"
CONN_ID = "idbt_bench_idp"
AUDIENCE = "idbt-bench"
POOL = "idbt_duckdb"

_DAG_FILE = f'''"""Benchmark DAG for airflow-provider-idbt: one task per model of the synthetic dbt project."""

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup

PROJECT = os.environ["IDBT_BENCH_PROJECT_DIR"]

with DAG(
    dag_id="{DAG_ID}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    DbtIdentityTaskGroup(
        group_id="{PROJECT_NAME}",
        project_dir=PROJECT,
        manifest_path=os.path.join(PROJECT, "target", "manifest.json"),
        identity_conn_id="{CONN_ID}",
        profiles_dir=PROJECT,
        # The models alone, one task each, as this comparison has always counted them: the seeds are loaded
        # before the run, and the per-model cost is what is measured.
        resource_types=("model",),
        tests="none",
        operator_kwargs={{"pool": "{POOL}"}},
    )
'''

# The control: the same number of tasks in a chain, each doing nothing, so the gap and the per-task cost
# that belong to Airflow itself can be told apart from the provider's.
_NOOP_DAG_FILE = f'''"""Control DAG for the idbt benchmark: no-op Python tasks in a chain, through the same Airflow."""

import os

import pendulum
from airflow.sdk import DAG, chain, task


@task
def noop() -> None:
    return None


with DAG(
    dag_id="{NOOP_DAG_ID}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    chain(*[noop.override(task_id=f"noop_{{i:02d}}")() for i in range(int(os.environ["IDBT_BENCH_NOOP_TASKS"]))])
'''

_FULL_PARSE_MARKERS = ("Unable to do partial parsing", "Starting full parse", "Partial parse save file not found")


# The supervisor waits in select() up to this long between checks, and a finished task's executor slot is
# only freed when it returns. Set explicitly in both runs, since LocalAirflow may choose its own value.
HEARTBEAT = "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"
MODE = "AIRFLOW__IDBT__EXECUTION_MODE"
VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("`[workers] min_heartbeat_interval = 5` (Airflow's default)", {HEARTBEAT: "5"}),
    ("`[workers] min_heartbeat_interval = 1`", {HEARTBEAT: "1"}),
    ("heartbeat 1, `execution_mode = warm` (worker started by the first task)", {HEARTBEAT: "1", MODE: "warm"}),
)


@dataclass
class AirflowFigures:
    """One DAG run: per-task wall, the dbt part of it, and the gaps Airflow leaves between tasks."""

    label: str
    models: int
    dags_test_wall: float = 0.0
    span: float = 0.0
    task_wall: Series = field(default_factory=Series)
    model_run: Series = field(default_factory=Series)
    in_task_overhead: Series = field(default_factory=Series)
    gap: Series = field(default_factory=Series)
    full_parses: int = 0

    @property
    def per_model(self) -> float:
        """Effective wall per model: first task start to last task end, divided by the number of tasks."""
        return self.span / self.models if self.models else float("nan")


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _json_document(text: str) -> Any:
    # Airflow may print warnings and log lines (which also start with "[") before the JSON document.
    lines = text.splitlines()
    decoder = json.JSONDecoder()
    for i, line in enumerate(lines):
        if line.startswith(("[", "{")):
            try:
                return decoder.raw_decode("\n".join(lines[i:]))[0]
            except ValueError:
                continue
    raise ValueError(f"no JSON document in: {text[-500:]}")


def _task_times(airflow: LocalAirflow, dag_id: str, run_id: str) -> list[tuple[str, datetime, datetime]]:
    states = _json_document(airflow.airflow("tasks", "states-for-dag-run", dag_id, run_id, "--output", "json").stdout)
    times = []
    for row in states:
        if row.get("start_date") and row.get("end_date"):
            times.append((row["task_id"], _when(row["start_date"]), _when(row["end_date"])))
    return sorted(times, key=lambda item: item[1])


def _dag_run(airflow: LocalAirflow, dag_id: str, label: str, n: int, known_runs: set[str]) -> AirflowFigures:
    figures = AirflowFigures(label=label, models=n)
    print(f"[airflow_path] `dags test --use-executor {dag_id}` with {label}", flush=True)
    started = time.perf_counter()
    proc = airflow.airflow("dags", "test", "--use-executor", dag_id, check=False, timeout=1800)
    figures.dags_test_wall = time.perf_counter() - started
    runs = _json_document(airflow.airflow("dags", "list-runs", dag_id, "--output", "json").stdout)
    new = [r for r in runs if r["run_id"] not in known_runs]
    if len(new) != 1 or new[0]["state"] != "success":
        raise RuntimeError(f"benchmark DAG run failed ({new}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    run_id = new[0]["run_id"]
    known_runs.add(run_id)
    times = _task_times(airflow, dag_id, run_id)
    outcome = DagRunOutcome(dag_id, run_id, "success", "", airflow.home / "logs")
    for log in outcome.task_logs().values():
        text = log.read_text(errors="replace")
        figures.full_parses += int(any(marker in text for marker in _FULL_PARSE_MARKERS))
    dbt_seconds = {
        event["task_id"]: float(event["duration_s"])
        for event in outcome.events()
        if event.get("kind") == "model_run" and event.get("phase") == "end"
    }
    for task_id, start, end in times:
        wall = (end - start).total_seconds()
        figures.task_wall.add(wall)
        if task_id in dbt_seconds:
            figures.model_run.add(dbt_seconds[task_id])
            figures.in_task_overhead.add(wall - dbt_seconds[task_id])
    for (_, _, prev_end), (_, next_start, _) in itertools.pairwise(times):
        figures.gap.add((next_start - prev_end).total_seconds())
    if times:
        figures.span = (max(t[2] for t in times) - min(t[1] for t in times)).total_seconds()
    if len(times) != n or (dag_id == DAG_ID and len(figures.model_run.values) != n):
        raise RuntimeError(f"expected {n} finished model tasks, found {len(times)} ({len(figures.model_run.values)})")
    return figures


def run(n: int = 10, variants: tuple[tuple[str, dict[str, str]], ...] = VARIANTS) -> dict[str, Any]:
    """Set up one Airflow installation, then one DAG run per variant (Airflow settings for `dags test` only)."""
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    load_before = load_average()
    setup: dict[str, float] = {}
    results: list[AirflowFigures] = []
    with tempfile.TemporaryDirectory(prefix="idbt-bench-airflow-") as tmp:
        root = Path(tmp)
        print(f"[airflow_path] N={n}: generating, parsing and seeding the project", flush=True)
        project = prepare(root / PROJECT_NAME, n)
        dags = root / "dags"
        dags.mkdir()
        (dags / "idbt_bench_dag.py").write_text(_DAG_FILE)
        (dags / "idbt_bench_noop_dag.py").write_text(_NOOP_DAG_FILE)
        secret = os.urandom(16).hex()
        client = DevClient(
            client_id="bench-runner",
            client_secret=secret,
            subject="svc-bench",
            groups=("analytics",),
            audiences=(AUDIENCE,),
        )
        with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:
            conn = idp.connection(client)
            env = {
                "IDBT_ALLOW_DEV_IDP": "1",
                DUCKDB_ENV: str(project.duckdb_path),
                "IDBT_BENCH_PROJECT_DIR": str(project.project_dir),
                "IDBT_BENCH_NOOP_TASKS": str(n),
                "IDBT_WARM_DIR": str(root / "warm"),
                f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn),
            }
            airflow = LocalAirflow(home=root / "airflow", dags_folder=dags, extra_env=env)
            started = time.perf_counter()
            airflow.prepare()
            setup["airflow db migrate"] = time.perf_counter() - started
            airflow.airflow("pools", "set", POOL, "1", "one DuckDB writer")
            started = time.perf_counter()
            airflow.start_api_server()
            setup["api-server start until healthy"] = time.perf_counter() - started
            try:
                started = time.perf_counter()
                airflow.airflow("dags", "reserialize")
                setup["dags reserialize"] = time.perf_counter() - started
                known: set[str] = set()
                for label, overrides in variants:
                    airflow.extra_env = {**env, **overrides}
                    results.append(_dag_run(airflow, DAG_ID, label, n, known))
                airflow.extra_env = {**env, **variants[0][1]}
                control = _dag_run(airflow, NOOP_DAG_ID, f"control: no-op `@task`s, {variants[0][0]}", n, known)
            finally:
                airflow.stop()
                stop_workers(root / "warm")
    report = render([*results, control], setup, load_before, load_average())
    print(report)
    return {"markdown": report, "figures": results[0], "variants": results, "control": control}


def render(results: list[AirflowFigures], setup: dict[str, float], load_before: str, load_after: str) -> str:
    def row(name: str, cell: Any) -> list[str]:
        return [name, *(cell(f) for f in results)]

    rows = [
        row("task wall (task start -> end, as Airflow records it)", lambda f: f.task_wall.fmt()),
        row("  of which the operator's dbt run (`model_run` end `duration_s`)", lambda f: f.model_run.fmt()),
        row(
            "  of which the rest of the task (token, manifest, pre-flight, events)",
            lambda f: f.in_task_overhead.fmt(),
        ),
        row(
            "gap between one task's end and the next one's start (mean; median (min-max))",
            lambda f: f"mean {f.gap.mean:.2f} s; {f.gap.fmt()}",
        ),
        row(
            "**effective wall per model** (first start -> last end, / tasks)",
            lambda f: f"**{f.per_model:.2f} s** ({f.span:.1f} s / {f.models})",
        ),
        row("`airflow dags test --use-executor` wall, whole DAG run", lambda f: f"{f.dags_test_wall:.1f} s"),
        row("tasks whose dbt did a full parse (partial parse file not reused)", lambda f: str(f.full_parses)),
    ]
    n = results[0].models if results else 0
    return "\n\n".join(
        [
            f"DAG runs of `DbtIdentityTaskGroup` over a {n}-model project, one after another in one Airflow "
            "installation: LocalExecutor, SQLite metadata, a pool of one slot (DuckDB takes one writer), so tasks "
            "run one at a time; each task is a supervised task process that fetches its own token from the dev "
            f"identity provider. Figures: median (min-max) over the {n} tasks of each run. The control DAG chains "
            f"{n} no-op Python tasks through the same installation: what Airflow costs per task on its own.",
            table(["per model", *(f.label for f in results)], rows),
            table(["one-off step (not per model)", "wall"], [[k, f"{v:.1f} s"] for k, v in setup.items()]),
            f"Load average (1/5/15 min) before / after: {load_before} -> {load_after}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--models", type=int, default=10)
    args = parser.parse_args(argv)
    run(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
