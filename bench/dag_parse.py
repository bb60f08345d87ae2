"""DAG-parse cost of DbtIdentityTaskGroup over N-model manifests, against plain JSON loading and plain operators."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import Series, load_average, table
from bench.synthetic_project import PROJECT_NAME, SyntheticProject, prepare

# Top-level packages a DAG file must not pay for at parse time (the task imports them when it runs).
HEAVY = ("dbt", "msal", "google", "boto3", "botocore", "duckdb", "agate", "azure", "jwt", "cryptography")
_REPO = Path(__file__).resolve().parents[1]


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def child(manifest: str, project: str, warm_repeats: int) -> dict[str, Any]:
    """Run in a fresh interpreter, like a DAG-processor child: import, then build the DAG the way a DAG file does."""
    t0 = time.perf_counter()
    import airflow.sdk  # noqa: F401  (what every DAG file imports anyway)

    t1 = time.perf_counter()
    before = set(sys.modules)
    from airflow_provider_idbt import DbtIdentityTaskGroup

    t2 = time.perf_counter()
    provider_modules = set(sys.modules) - before

    from airflow.sdk import DAG

    from airflow_provider_idbt.dbt import manifest as manifest_module

    def naive_json() -> dict[str, Any]:
        with open(manifest, "rb") as handle:
            return json.load(handle)

    def empty_dag() -> DAG:
        # The same tasks and edges with Airflow's cheapest operator: what Airflow itself costs per task.
        nodes = naive_json()["nodes"]
        models = {uid: node for uid, node in nodes.items() if node["resource_type"] == "model"}
        with DAG(dag_id="bench_empty", schedule=None) as dag:
            tasks = {uid: EmptyOperator(task_id=node["name"]) for uid, node in models.items()}
            for uid, task in tasks.items():
                for parent in models[uid]["depends_on"]["nodes"]:
                    if parent in tasks:
                        tasks[parent] >> task
        return dag

    def idbt_dag() -> DAG:
        with DAG(dag_id="bench_idbt", schedule=None) as dag:
            DbtIdentityTaskGroup(
                group_id=PROJECT_NAME,
                project_dir=project,
                manifest_path=manifest,
                identity_conn_id="idbt_dev",
                profiles_dir=project,
                operator_kwargs={"pool": "idbt_duckdb", "retries": 1},
            )
        return dag

    def cold(fn: Any) -> float:
        manifest_module._cache.clear()  # every DAG-processor child starts with an empty manifest cache
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    result: dict[str, Any] = {
        "import_airflow_sdk_s": t1 - t0,
        "import_provider_s": t2 - t1,
        "provider_modules": len(provider_modules),
        # The first build in the process: what one DAG-processor parse pays after the imports.
        "first_idbt_dag_s": cold(idbt_dag),
    }

    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.serialization.serialized_objects import DagSerialization

    samples: dict[str, list[float]] = {"json": [], "index": [], "empty_dag": [], "idbt_dag": [], "serialize": []}
    for _ in range(warm_repeats):
        samples["json"].append(cold(naive_json))
        samples["index"].append(cold(lambda: manifest_module.ManifestIndex.load(manifest)))
        samples["empty_dag"].append(cold(empty_dag))
        samples["idbt_dag"].append(cold(idbt_dag))
        dag = idbt_dag()
        start = time.perf_counter()
        DagSerialization.to_dict(dag)
        samples["serialize"].append(time.perf_counter() - start)
    result["samples"] = samples
    result["tasks"] = len(idbt_dag().task_dict)
    return result


def probe(manifest: str, project: str) -> dict[str, list[str]]:
    """In a fresh interpreter: the heavy packages the provider's import and a build without Assets bring in (the
    provider's own), then those a build with Assets adds: Airflow loads every provider's Asset URI handlers
    (the Amazon provider's imports boto3) for the first Asset of a process, whoever declares it."""
    import airflow.sdk  # noqa: F401

    before = set(sys.modules)
    from airflow.sdk import DAG

    from airflow_provider_idbt import DbtIdentityTaskGroup

    def build(assets: bool) -> set[str]:
        with DAG(dag_id=f"bench_probe_{assets}", schedule=None):
            DbtIdentityTaskGroup(
                group_id=PROJECT_NAME,
                project_dir=project,
                manifest_path=manifest,
                identity_conn_id="idbt_dev",
                profiles_dir=project,
                assets=assets,
            )
        return {_top(m) for m in set(sys.modules) - before if _top(m) in HEAVY}

    own = build(assets=False)
    return {"provider": sorted(own), "airflow_assets": sorted(build(assets=True) - own)}


@dataclass
class ParseFigures:
    """Aggregated over fresh processes: imports and DAG build for one manifest size."""

    models: int
    tasks: int
    manifest_kib: float
    import_sdk: Series = field(default_factory=Series)
    import_provider: Series = field(default_factory=Series)
    first_build: Series = field(default_factory=Series)
    json: Series = field(default_factory=Series)
    index: Series = field(default_factory=Series)
    empty_dag: Series = field(default_factory=Series)
    idbt_dag: Series = field(default_factory=Series)
    serialize: Series = field(default_factory=Series)
    provider_modules: int = 0
    heavy: list[str] = field(default_factory=list)
    heavy_from_assets: list[str] = field(default_factory=list)


def measure(project: SyntheticProject, processes: int, warm_repeats: int) -> ParseFigures:
    figures = ParseFigures(
        models=len(project.models), tasks=0, manifest_kib=project.manifest_path.stat().st_size / 1024
    )
    for _ in range(processes):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.dag_parse",
                "--warm-repeats",
                str(warm_repeats),
                "--child",
                str(project.manifest_path),
                str(project.project_dir),
            ],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=600,
            env={**project.env(), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"DAG-parse child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        figures.tasks = data["tasks"]
        figures.provider_modules = data["provider_modules"]
        figures.import_sdk.add(data["import_airflow_sdk_s"])
        figures.import_provider.add(data["import_provider_s"])
        figures.first_build.add(data["first_idbt_dag_s"])
        for name in ("json", "index", "empty_dag", "idbt_dag", "serialize"):
            getattr(figures, name).values.extend(data["samples"][name])
    proc = subprocess.run(
        [sys.executable, "-m", "bench.dag_parse", "--probe", str(project.manifest_path), str(project.project_dir)],
        cwd=_REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**project.env(), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"DAG-parse probe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    figures.heavy, figures.heavy_from_assets = heavy["provider"], heavy["airflow_assets"]
    return figures


def run(sizes: tuple[int, ...] = (50, 200), processes: int = 3, warm_repeats: int = 3) -> dict[str, Any]:
    """Measure every size; raise if the provider pulled in a heavy package at parse time."""
    results: list[ParseFigures] = []
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="idbt-bench-parse-") as tmp:
        for n in sizes:
            print(f"[dag_parse] N={n}: generating and parsing the project", flush=True)
            project = prepare(Path(tmp) / f"n{n}" / PROJECT_NAME, n, seed=False)
            print(f"[dag_parse] N={n}: {processes} fresh processes x {warm_repeats} builds", flush=True)
            results.append(measure(project, processes, warm_repeats))
    heavy = sorted({name for figures in results for name in figures.heavy})
    if heavy:
        raise AssertionError(f"the provider imported heavy packages at DAG-parse time: {', '.join(heavy)}")
    report = render(results, processes, warm_repeats, load_before, load_average())
    print(report)
    return {"markdown": report, "figures": results}


def _ms(series: Series) -> str:
    return f"{series.median * 1000:.1f} ({series.low * 1000:.1f}-{series.high * 1000:.1f})"


def render(results: list[ParseFigures], processes: int, warm_repeats: int, load_before: str, load_after: str) -> str:
    imports = table(
        ["models", "import airflow.sdk, ms", "+ import provider (DbtIdentityTaskGroup), ms", "modules added"],
        [[str(f.models), _ms(f.import_sdk), _ms(f.import_provider), str(f.provider_modules)] for f in results],
    )
    build = table(
        [
            "models (tasks)",
            "manifest",
            "json.load, ms",
            "ManifestIndex.load, ms",
            "DAG of EmptyOperators, ms",
            "DAG with DbtIdentityTaskGroup, ms",
            "first build in process, ms",
            "serialize DAG, ms",
            "per task (idbt DAG / tasks), ms",
        ],
        [
            [
                f"{f.models} ({f.tasks})",
                f"{f.manifest_kib:.0f} KiB",
                _ms(f.json),
                _ms(f.index),
                _ms(f.empty_dag),
                _ms(f.idbt_dag),
                _ms(f.first_build),
                _ms(f.serialize),
                f"{f.idbt_dag.median / max(f.tasks, 1) * 1000:.2f}",
            ]
            for f in results
        ],
    )
    return "\n\n".join(
        [
            f"Import times: median (min-max) over {processes} fresh interpreters per size.",
            imports,
            f"DAG build: median (min-max) over {processes} processes x {warm_repeats} builds, manifest cache cleared "
            "before each; the EmptyOperator DAG has the same tasks and edges, read with plain `json.load`.",
            build,
            f"Heavy packages ({', '.join(HEAVY)}) imported by the provider or by building the DAG without Assets: "
            "none (checked in a fresh interpreter per size). Declaring Assets (the default) adds "
            f"{', '.join(sorted({n for f in results for n in f.heavy_from_assets})) or 'none'}: Airflow loads "
            "every installed provider's Asset URI handlers for the first Asset of a process, as it does for any "
            f"DAG with an Asset. Load average before / after: {load_before} -> {load_after}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("MANIFEST", "PROJECT_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--probe", nargs=2, metavar=("MANIFEST", "PROJECT_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--warm-repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--sizes", default="50,200", help="comma-separated model counts")
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe[0], args.probe[1])))
        return 0
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.warm_repeats)))
        return 0
    run(tuple(int(s) for s in args.sizes.split(",")), args.processes, args.warm_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
