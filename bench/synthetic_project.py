"""Generate a layered synthetic dbt project (seeds, staging views, intermediate and mart tables) for DuckDB or
PostgreSQL."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_NAME = "idbt_bench"
PROFILE_NAME = "idbt_bench"
DUCKDB_ENV = "IDBT_DUCKDB_PATH"
PG_DATABASE_ENV = "IDBT_BENCH_PG_DATABASE"
PG_HOST = "127.0.0.1"
PG_USER = "root"
SEEDS = ("raw_customers", "raw_orders", "raw_payments", "raw_refunds", "raw_shipments")
DEFAULT_SEEDS = 3
_SEED_ROWS = 200
# The line the operator asks projects to carry, so the benchmark pays what a real project pays for it.
_QUERY_COMMENT = "query-comment: \"{{ env_var('IDBT_QUERY_COMMENT', '') }}\""


@dataclass(frozen=True)
class SyntheticProject:
    """A generated project: its directory (profiles.yml included), its DuckDB file and its model names."""

    project_dir: Path
    duckdb_path: Path
    models: tuple[str, ...]
    layers: dict[str, tuple[str, ...]]
    adapter: str = "duckdb"
    pg_database: str = ""
    seeds: tuple[str, ...] = SEEDS[:DEFAULT_SEEDS]

    @property
    def profiles_dir(self) -> Path:
        return self.project_dir

    @property
    def target_dir(self) -> Path:
        return self.project_dir / "target"

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "manifest.json"

    def env(self) -> dict[str, str]:
        """A clean environment for dbt: no inherited DBT_* settings, no usage stats, this project's DuckDB file."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
        env.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_VERSION_CHECK": "false"})
        env[DUCKDB_ENV] = str(self.duckdb_path)
        if self.pg_database:
            env[PG_DATABASE_ENV] = self.pg_database
        return env

    def edges(self) -> list[tuple[str, str]]:
        """(upstream, downstream) model pairs, as the manifest records them (after ``dbt parse``)."""
        manifest = json.loads(self.manifest_path.read_text())
        pairs = []
        for node in manifest["nodes"].values():
            if node["resource_type"] != "model":
                continue
            for parent in node["depends_on"]["nodes"]:
                if parent.startswith("model."):
                    pairs.append((parent.rsplit(".", 1)[1], node["name"]))
        return sorted(pairs)


def layer_sizes(n: int) -> tuple[int, int, int]:
    """Staging, intermediate and mart counts for ``n`` models (about 40/35/25 %, at least one each)."""
    if n < 3:
        raise ValueError("a layered project needs at least 3 models")
    staging = max(1, round(n * 0.4))
    intermediate = max(1, round(n * 0.35))
    marts = n - staging - intermediate
    if marts < 1:
        intermediate -= 1 - marts
        marts = 1
    return staging, intermediate, marts


def _seed_csv(name: str) -> str:
    rows = ["id,customer_id,amount,status,created_at"]
    for i in range(1, _SEED_ROWS + 1):
        status = ("placed", "shipped", "returned", "completed")[i % 4]
        rows.append(f"{i},{(i * 7) % 50 + 1},{(i * 13) % 97 + 0.5},{status},2026-01-{i % 28 + 1:02d}")
    return "\n".join(rows) + "\n"


def _staging_sql(index: int, seeds: tuple[str, ...]) -> str:
    seed = seeds[index % len(seeds)]
    return (
        "select\n    id,\n    customer_id,\n    amount,\n    status,\n    cast(created_at as date) as created_on,\n"
        f"    {index} as source_variant\nfrom {{{{ ref('{seed}') }}}}\nwhere id % {index % 5 + 2} <> 0\n"
    )


def _intermediate_sql(index: int, staging: list[str]) -> str:
    left = staging[index % len(staging)]
    right = staging[(index * 3 + 1) % len(staging)]
    return (
        "select\n    a.customer_id,\n    a.created_on,\n    count(*) as n_rows,\n    sum(a.amount) as amount,\n"
        "    sum(b.amount) as matched_amount\n"
        f"from {{{{ ref('{left}') }}}} as a\n"
        f"left join {{{{ ref('{right}') }}}} as b on b.id = a.id\n"
        "group by a.customer_id, a.created_on\n"
    )


def _mart_sql(index: int, intermediate: list[str]) -> str:
    parents = sorted({intermediate[(index + k * 5) % len(intermediate)] for k in range(3)})
    unions = "\n    union all\n".join(
        f"    select customer_id, created_on, amount from {{{{ ref('{p}') }}}}" for p in parents
    )
    return (
        "with unioned as (\n"
        f"{unions}\n)\n"
        "select customer_id, count(*) as days_active, sum(amount) as total_amount\n"
        "from unioned\ngroup by customer_id\n"
    )


def _schema_yml(
    names: list[str],
    described: str,
    tests: bool,
    *,
    untested: Collection[str] = (),
    config: Mapping[str, Mapping[str, Any]] | None = None,
    relationships: Mapping[str, str] | None = None,
) -> str:
    """A schema file: a description per model, a not_null test unless ``untested``, each model's ``config``
    block (tags, meta), and a relationships test from a model's customer_id to the model ``relationships`` names."""
    lines = ["version: 2", "", "models:"]
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    description: {described} model {name} of the synthetic benchmark project",
        ]
        model_config = (config or {}).get(name)
        if model_config is not None:
            lines += ["    config:", *(f"      {line}" for line in yaml.safe_dump(dict(model_config)).splitlines())]
        checks = ["not_null"] if tests and name not in untested else []
        parent = (relationships or {}).get(name)
        if parent:
            checks.append(f"{{relationships: {{arguments: {{to: \"ref('{parent}')\", field: customer_id}}}}}}")
        if checks:
            lines += ["    columns:", "      - name: customer_id", f"        data_tests: [{', '.join(checks)}]"]
    return "\n".join(lines) + "\n"


def _snapshot_sql(seed: str, config: Mapping[str, Any]) -> str:
    settings = {"unique_key": "id", "strategy": "check", "check_cols": ["status"], **config}
    return (
        f"{{% snapshot {seed}_snapshot %}}\n{{{{ config(**{json.dumps(settings)}) }}}}\n"
        f"select * from {{{{ ref('{seed}') }}}}\n{{% endsnapshot %}}\n"
    )


def _singular_tests(marts: list[str]) -> dict[str, str]:
    """Two singular tests: one on the first mart, one across the next two (a test of two unrelated models)."""
    tests = {"assert_mart_totals_positive": f"select * from {{{{ ref('{marts[0]}') }}}} where total_amount < 0\n"}
    if len(marts) >= 3:
        tests["assert_marts_agree_on_customers"] = (
            f"select a.customer_id from {{{{ ref('{marts[1]}') }}}} as a\n"
            f"join {{{{ ref('{marts[2]}') }}}} as b on b.customer_id = a.customer_id\n"
            "where a.days_active < 1 or b.days_active < 1\n"
        )
    return tests


def _profile(adapter: str) -> str:
    if adapter == "duckdb":
        output = f"type: duckdb\n      path: \"{{{{ env_var('{DUCKDB_ENV}') }}}}\""
    elif adapter == "postgres":
        # The token is the password, as the operator hands it over; the local server trusts loopback
        # connections, so any value passes and the same profile serves every way of running dbt.
        output = (
            f"type: postgres\n      host: {PG_HOST}\n      port: 5432\n      user: {PG_USER}\n"
            "      password: \"{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN', 'trust') }}\"\n"
            f"      dbname: \"{{{{ env_var('{PG_DATABASE_ENV}') }}}}\"\n      schema: {PROJECT_NAME}"
        )
    else:
        raise ValueError(f"unknown adapter {adapter!r}: duckdb or postgres")
    return f"{PROFILE_NAME}:\n  target: dev\n  outputs:\n    dev:\n      {output}\n      threads: 1\n"


def generate(
    root: Path,
    n: int,
    *,
    adapter: str = "duckdb",
    tests: bool = True,
    warehouse_seconds: float = 0.0,
    pg_database: str = "",
    seeds: int = DEFAULT_SEEDS,
    untested: Collection[str] = (),
    model_config: Mapping[str, Mapping[str, Any]] | None = None,
    extra_tests: bool = False,
    on_run_start: Sequence[str] = (),
    snapshot: Mapping[str, Any] | None = None,
    selectors: Sequence[Mapping[str, Any]] = (),
) -> SyntheticProject:
    """Write a project with ``n`` models under ``root`` (created) and return it; no dbt command is run.

    ``warehouse_seconds`` (PostgreSQL only) adds a pre-hook that sleeps on the server before each model, to stand
    for real models' warehouse time: the server waits, the orchestrating machine's CPU does not.
    The options after it make the project look like a team's: ``seeds`` seed files (up to 5), ``untested`` models
    without a schema test, ``model_config`` (a model's ``config:`` in its schema file: tags, ``meta.idbt``), and
    ``extra_tests``: two singular tests and a relationships test from the first intermediate model to its staging
    parent; ``on_run_start``: the project's on-run-start hooks (SQL statements); ``snapshot``: the config (tags,
    meta) of a snapshot of the first seed, which no model reads (None: no snapshot); ``selectors``: the project's
    YAML selectors (selectors.yml).
    """
    if warehouse_seconds and adapter != "postgres":
        raise ValueError("warehouse_seconds needs the postgres adapter (pg_sleep)")
    if not 1 <= seeds <= len(SEEDS):
        raise ValueError(f"seeds must be 1 to {len(SEEDS)}, got {seeds}")
    hook = f'    +pre-hook: "select pg_sleep({warehouse_seconds})"\n' if warehouse_seconds else ""
    n_stg, n_int, n_mart = layer_sizes(n)
    stg = [f"stg_{i:04d}" for i in range(n_stg)]
    inter = [f"int_{i:04d}" for i in range(n_int)]
    marts = [f"mart_{i:04d}" for i in range(n_mart)]
    seed_names = SEEDS[:seeds]
    unknown = sorted(set(model_config or {}).union(untested) - {*stg, *inter, *marts})
    if unknown:
        raise ValueError(f"no such models: {', '.join(unknown)}")
    project = root
    for sub in ("seeds", "models/staging", "models/intermediate", "models/marts"):
        (project / sub).mkdir(parents=True, exist_ok=True)
    hooks = yaml.safe_dump({"on-run-start": list(on_run_start)}, width=1000) if on_run_start else ""
    (project / "dbt_project.yml").write_text(
        f"name: {PROJECT_NAME}\nversion: '1.0.0'\nconfig-version: 2\nprofile: {PROFILE_NAME}\n"
        f"{_QUERY_COMMENT}\n{hooks}"
        "model-paths: [models]\nseed-paths: [seeds]\ntarget-path: target\n"
        f"models:\n  {PROJECT_NAME}:\n{hook}    staging:\n      +materialized: view\n"
        "    intermediate:\n      +materialized: table\n    marts:\n      +materialized: table\n"
    )
    (project / "profiles.yml").write_text(_profile(adapter))
    for seed in seed_names:
        (project / "seeds" / f"{seed}.csv").write_text(_seed_csv(seed))
    for i, name in enumerate(stg):
        (project / "models/staging" / f"{name}.sql").write_text(_staging_sql(i, seed_names))
    for i, name in enumerate(inter):
        (project / "models/intermediate" / f"{name}.sql").write_text(_intermediate_sql(i, stg))
    for i, name in enumerate(marts):
        (project / "models/marts" / f"{name}.sql").write_text(_mart_sql(i, inter))
    # int_i reads stg[i % len(stg)] as its left side, so each of its customer ids is one of that model's.
    relationships = {inter[0]: stg[0]} if extra_tests else {}
    options: dict[str, Any] = {"untested": untested, "config": model_config, "relationships": relationships}
    for layer, names in (("staging", stg), ("intermediate", inter), ("mart", marts)):
        folder = "marts" if layer == "mart" else layer
        (project / "models" / folder / "schema.yml").write_text(_schema_yml(names, layer, tests, **options))
    if selectors:
        (project / "selectors.yml").write_text(yaml.safe_dump({"selectors": list(selectors)}, sort_keys=False))
    if snapshot is not None:
        (project / "snapshots").mkdir(exist_ok=True)
        (project / "snapshots" / f"{seed_names[0]}_snapshot.sql").write_text(_snapshot_sql(seed_names[0], snapshot))
    if extra_tests:
        (project / "tests").mkdir(exist_ok=True)
        for name, sql in _singular_tests(marts).items():
            (project / "tests" / f"{name}.sql").write_text(sql)
    return SyntheticProject(
        project_dir=project,
        duckdb_path=project / "warehouse.duckdb",
        models=(*stg, *inter, *marts),
        layers={"staging": tuple(stg), "intermediate": tuple(inter), "marts": tuple(marts)},
        adapter=adapter,
        pg_database=pg_database,
        seeds=seed_names,
    )


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_command(project: SyntheticProject, *args: str) -> list[str]:
    """argv of the dbt CLI for ``project`` (its own profiles.yml)."""
    return [
        dbt_executable(),
        *args,
        "--project-dir",
        str(project.project_dir),
        "--profiles-dir",
        str(project.profiles_dir),
    ]


def run_dbt(project: SyntheticProject, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the dbt CLI in the project directory; raise with dbt's output on failure; return stdout."""
    proc = subprocess.run(
        dbt_command(project, *args),
        cwd=project.project_dir,
        env=env or project.env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}")
    return proc.stdout


def create_pg_database(name: str) -> None:
    """A new, empty PostgreSQL database on the local server (dropped first if a previous run left it)."""
    for sql in (f"drop database if exists {name}", f"create database {name}"):
        subprocess.run(
            ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", "postgres", "-qc", sql], check=True, capture_output=True
        )


def prepare(root: Path, n: int, *, seed: bool = True, **options: Any) -> SyntheticProject:
    """Generate, ``dbt parse`` (manifest + partial parse file) and optionally ``dbt seed`` a project."""
    if options.get("pg_database"):
        create_pg_database(options["pg_database"])
    project = generate(root, n, **options)
    run_dbt(project, "parse", "--quiet")
    if seed:
        run_dbt(project, "seed", "--quiet")
    return project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--models", type=int, default=50)
    parser.add_argument("--dir", help="where to write the project (default: a new temporary directory)")
    parser.add_argument("--parse", action="store_true", help="also run dbt parse and dbt seed")
    args = parser.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="idbt-bench-")) / PROJECT_NAME
    project = prepare(root, args.models) if args.parse else generate(root, args.models)
    sizes = {layer: len(names) for layer, names in project.layers.items()}
    print(f"{len(project.models)} models {sizes} in {project.project_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
