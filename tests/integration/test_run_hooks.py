"""Project hooks with real dbt on DuckDB and PostgreSQL, in a new process and in the warm worker: a model run
without them runs none, a hooks-only run runs exactly that type's hooks once, in dbt's order."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest

from airflow_provider_idbt.dbt.results import RunResult
from airflow_provider_idbt.dbt.run_hooks import hook_records
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.dbt.warm import WarmRunner, WarmSettings, stop_workers
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR
from tests.fixtures.hooks_warehouse import END, LOG_QUERY, START, copy_hooks_project

pytestmark = pytest.mark.integration

TOKEN = "idbt-hooks-token-5e1f9a0c7d"  # made up; trust auth ignores it


def create_pg_database() -> str:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust) with the `analytics` schema."""
    name = f"idbt_hooks_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'create database "{name}"')
    admin.close()
    with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name) as conn:
        conn.cursor().execute("create schema analytics")
    return name


def drop_pg_database(name: str) -> None:
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'drop database if exists "{name}" with (force)')
    admin.close()


@dataclass
class HooksSetup:
    project_dir: Path
    target: str
    env: dict[str, str]
    root: Path
    lines: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    runs: int = 0

    @property
    def manifest_path(self) -> Path:
        return self.project_dir / "target" / "manifest.json"

    def invocation(self, select: str = "", **kwargs: Any) -> DbtInvocation:
        self.runs += 1
        run_dir = self.root / "runs" / f"run{self.runs}"
        return DbtInvocation(
            project_dir=str(self.project_dir),
            profiles_dir=str(self.project_dir),
            select=select,
            target_path=str(run_dir / "target"),
            log_path=str(run_dir / "logs"),
            target=self.target,
            env=self.env,
            partial_parse_from=str(self.manifest_path.parent),
            **kwargs,
        )

    def runner(self, mode: str) -> SubprocessRunner:
        if mode == "subprocess":
            return SubprocessRunner()
        settings = WarmSettings(self.root / "warm", idle_timeout=300)
        return WarmRunner(
            str(self.manifest_path), adapter=self.target, settings=settings, on_fallback=self.fallbacks.append
        )

    def run(self, mode: str, invocation: DbtInvocation) -> RunResult:
        result = self.runner(mode).run(invocation, {TOKEN_ENV_VAR: TOKEN}, self.lines.append)
        assert result.status == "success", self.lines[-30:]
        return result

    def log_rows(self) -> list[tuple[str, str, str]]:
        """(invocation_id, hook, note) of every row the hooks wrote, in the order they wrote them."""
        if self.target == "duckdb":
            with duckdb.connect(self.env["IDBT_DUCKDB_PATH"], read_only=True) as con:
                return [tuple(row) for row in con.execute(LOG_QUERY.format(schema="main")).fetchall()]
        with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=self.env["IDBT_PG_DB"]) as conn:
            cur = conn.cursor()
            cur.execute(LOG_QUERY.format(schema="analytics"))
            return [tuple(row) for row in cur.fetchall()]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def hooks_setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HooksSetup]:
    root = tmp_path_factory.mktemp(f"hooks-{request.param}")
    env = {"IDBT_DUCKDB_PATH": str(root / "hooks.duckdb")}
    database = None
    if request.param == "postgres":
        database = create_pg_database()
        env = {"IDBT_PG_DB": database, "IDBT_PG_USER": "postgres", "IDBT_PG_PORT": "5432"}
    try:
        project = copy_hooks_project(root / "idbt_hooks", request.param, env)
        yield HooksSetup(project, request.param, env, root)
    finally:
        stop_workers(root / "warm")
        if database:
            drop_pg_database(database)


def _new_rows(setup: HooksSetup, before: int) -> list[tuple[str, str, str]]:
    return setup.log_rows()[before:]


@pytest.mark.parametrize("mode", ["subprocess", "warm"])
def test_hooks_run_alone_or_not_at_all_in_both_modes(hooks_setup: HooksSetup, mode: str) -> None:
    setup = hooks_setup
    records = hook_records(json.loads(setup.manifest_path.read_text()))
    start_ids = [r["unique_id"] for r in records if r["hook_type"] == "on-run-start"]
    end_ids = [r["unique_id"] for r in records if r["hook_type"] == "on-run-end"]
    before = len(setup.log_rows()) if setup.runs else 0

    # on-run-start alone: every start hook, packages' included, once, in hook_records' (= dbt's) order.
    started = setup.run(mode, setup.invocation(command="hooks", run_hooks=("on-run-start",)))
    assert [node.unique_id for node in started.nodes] == start_ids
    rows = _new_rows(setup, before)
    assert [hook for _, hook, _ in rows] == START
    assert len({invocation for invocation, _, _ in rows}) == 1

    # A model without project hooks: the model ran, the log did not grow.
    count = len(setup.log_rows())
    plain = setup.run(mode, setup.invocation("model_a", run_hooks=False))
    assert [node.unique_id for node in plain.nodes] == ["model.idbt_hooks.model_a"]
    assert len(setup.log_rows()) == count

    # A model keeping only its on-run-end hooks: the results reader sees this model's own result.
    kept = setup.run(mode, setup.invocation("model_b", run_hooks=("on-run-end",)))
    assert [node.unique_id for node in kept.nodes] == ["model.idbt_hooks.model_b", *end_ids]
    rows = _new_rows(setup, count)
    assert [(hook, note) for _, hook, note in rows] == [(END[0], ""), (END[1], "model.idbt_hooks.model_b")]

    # on-run-end alone: its hooks once, with an empty `results`.
    count = len(setup.log_rows())
    ended = setup.run(mode, setup.invocation(command="hooks", run_hooks=("on-run-end",)))
    assert [node.unique_id for node in ended.nodes] == end_ids
    assert [(hook, note) for _, hook, note in _new_rows(setup, count)] == [(END[0], ""), (END[1], "")]

    # The control: by default a model task runs every hook, as dbt does.
    count = len(setup.log_rows())
    setup.run(mode, setup.invocation("model_c"))
    assert [hook for _, hook, _ in _new_rows(setup, count)] == [*START, *END]
    assert setup.fallbacks == []  # the warm runs really ran in the warm worker
    assert not any(TOKEN in line for line in setup.lines)
