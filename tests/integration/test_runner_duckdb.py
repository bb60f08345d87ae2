"""Real dbt on DuckDB through SubprocessRunner: one model per run, the token kept out of files, argv and environ."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from airflow_provider_idbt.dbt.manifest import ManifestIndex
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.results import RunResult
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.errors import ModelNotFound, StaleManifest
from airflow_provider_idbt.warehouses.spec import TOKEN_ENV_VAR
from tests.fixtures.dbt_projects import DbtProject, copy_project, parse_project

pytestmark = pytest.mark.integration

TOKEN = "idbt-test-token-5f1c0e9a7b3d4c2e8a6f"  # made up; the tests hunt for it everywhere
SLOW_MODEL = "select 1 as id from (select sleep_ms({ms})) as pause"


@dataclass
class Warehouse:
    project: DbtProject
    profiles_dir: Path
    workdir: Path
    lines: list[str] = field(default_factory=list)
    runs: int = 0

    def invocation(self, select: str, *, exclude: str | None = None, command: str = "run") -> DbtInvocation:
        self.runs += 1
        return DbtInvocation(
            project_dir=str(self.project.project_dir),
            profiles_dir=str(self.profiles_dir),
            select=select,
            exclude=exclude,
            target_path=str(self.workdir / f"run{self.runs}" / "target"),
            log_path=str(self.workdir / f"run{self.runs}" / "logs"),
            profile_name="idbt_example",
            target="ci",
            command=command,
            env=self.project.env,
            partial_parse_from=str(self.project.manifest_path.parent),
        )

    def run(self, invocation: DbtInvocation, runner: SubprocessRunner | None = None) -> RunResult:
        return (runner or SubprocessRunner()).run(invocation, {TOKEN_ENV_VAR: TOKEN}, self.lines.append)


@pytest.fixture(scope="module")
def warehouse(example_project: DbtProject, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root = tmp_path_factory.mktemp("warehouse")
    project = copy_project(example_project.project_dir, root / "idbt_example")
    shutil.copytree(example_project.manifest_path.parent, project.manifest_path.parent)
    # Unknown to the manifest on purpose: dbt parses it at run time; only these tests select it.
    slow = project.project_dir / "models" / "slow"
    slow.mkdir()
    (slow / "slow_model.sql").write_text(SLOW_MODEL.format(ms=60_000))
    # DuckDB needs no token, but this profile renders it anyway (env_var() without a default fails when
    # the variable is absent), so every run proves the token reached dbt, and a leak would show.
    profile = render_profile("duckdb", {"path": str(project.duckdb_path)}, "idbt_example", "ci")
    profile["idbt_example"]["outputs"]["ci"]["idbt_probe"] = "{{ env_var('" + TOKEN_ENV_VAR + "') }}"
    profiles_dir = write_profiles_dir(profile, root / "profiles")
    return Warehouse(project, profiles_dir, root / "runs")


@pytest.fixture(scope="module")
def built(warehouse: Warehouse) -> dict[str, RunResult]:
    """Seeds, then every model of the manifest alone, parents first."""
    results = {"seeds": warehouse.run(warehouse.invocation("package:idbt_example", command="seed"))}
    for spec in ManifestIndex.load(warehouse.project.manifest_path).models():
        results[spec.unique_id] = warehouse.run(warehouse.invocation(spec.selector, exclude=spec.selector_exclude))
    return results


def test_each_model_runs_alone_in_dependency_order(built: dict[str, RunResult], warehouse: Warehouse) -> None:
    assert built["seeds"].status == "success", warehouse.lines[-30:]
    assert len(built["seeds"].nodes) == 3
    index = ManifestIndex.load(warehouse.project.manifest_path)
    for spec in index.models():
        result = built[spec.unique_id]
        assert result.status == "success", (spec.unique_id, result.message, warehouse.lines[-30:])
        assert [node.unique_id for node in result.nodes] == [spec.unique_id]
        assert result.returncode == 0 and result.duration > 0 and result.elapsed is not None
    with duckdb.connect(str(warehouse.project.duckdb_path), read_only=True) as con:
        for spec in index.models():
            assert spec.output is not None
            row = con.execute(f"select count(*) from {spec.output}").fetchone()
            assert row is not None and row[0] > 0
        top = con.execute("select first_name, order_count from main.customer_orders order by 2 desc, 1 limit 1")
        assert top.fetchone() == ("Ada", 2)


def test_token_is_never_written_or_printed(built: dict[str, RunResult], warehouse: Warehouse) -> None:
    assert any("OK created sql table model main.customer_orders" in line for line in warehouse.lines)
    assert not [line for line in warehouse.lines if TOKEN in line]
    assert TOKEN not in repr(built)
    files = [path for path in warehouse.workdir.rglob("*") if path.is_file()]
    assert any(path.name == "run_results.json" for path in files)
    assert any(path.name == "dbt.log" for path in files)
    for path in [*files, *warehouse.project.project_dir.rglob("*")]:
        if path.is_file() and path.suffix != ".duckdb":
            assert TOKEN.encode() not in path.read_bytes(), path


def _start_slow(warehouse: Warehouse) -> tuple[SubprocessRunner, threading.Thread, list[RunResult], threading.Event]:
    runner = SubprocessRunner()
    results: list[RunResult] = []
    started = threading.Event()
    invocation = warehouse.invocation("fqn:idbt_example.slow.slow_model")

    def on_line(line: str) -> None:
        warehouse.lines.append(line)
        if "START sql" in line and "slow_model" in line:
            started.set()

    def target() -> None:
        results.append(runner.run(invocation, {TOKEN_ENV_VAR: TOKEN}, on_line))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert started.wait(60), warehouse.lines[-20:]
    return runner, thread, results, started


def test_running_child_shows_no_token_in_proc(warehouse: Warehouse) -> None:
    runner, thread, _, _ = _start_slow(warehouse)
    try:
        pid = runner.pid
        assert pid is not None
        # The child has read the token (its profile rendered) and is now inside the model's query.
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"worker.py" in cmdline and b"slow_model" in cmdline
        assert TOKEN.encode() not in environ
        assert TOKEN.encode() not in cmdline
        assert b"DBT_ENV_SECRET" not in environ
    finally:
        runner.terminate(grace_seconds=5)
        thread.join(30)


def test_terminate_stops_the_child_within_the_grace_period(warehouse: Warehouse) -> None:
    runner, thread, results, _ = _start_slow(warehouse)
    pid = runner.pid
    assert pid is not None
    begin = time.monotonic()
    runner.terminate(grace_seconds=5)
    assert time.monotonic() - begin < 6
    thread.join(10)
    assert not thread.is_alive()
    assert results[0].status == "invocation_error"
    assert "terminated" in results[0].message
    assert not Path(f"/proc/{pid}").exists()
    assert runner.pid is None


@pytest.fixture
def nested_project(example_project: DbtProject, tmp_path: Path) -> Iterator[DbtProject]:
    """The example project plus a model in a folder named like a model: the fqn prefix trap."""
    project = copy_project(example_project.project_dir, tmp_path / "idbt_example")
    nested = project.project_dir / "models" / "marts" / "customer_orders"
    nested.mkdir()
    (nested / "nested_probe.sql").write_text("select 1 as id")
    yield parse_project(project)


def test_selector_matches_exactly_one_model(nested_project: DbtProject, tmp_path: Path) -> None:
    spec = ManifestIndex.load(nested_project.manifest_path).model("customer_orders")
    assert spec.selector_exclude == "fqn:idbt_example.marts.customer_orders.*"
    invocation = DbtInvocation(
        project_dir=str(nested_project.project_dir),
        profiles_dir=str(nested_project.profiles_dir),
        select=spec.selector,
        exclude=spec.selector_exclude,
        target_path=str(tmp_path / "target"),
        log_path=str(tmp_path / "logs"),
        command="ls",
        extra_args=("--resource-type", "model", "--output", "name", "--quiet"),
        env=nested_project.env,
    )
    lines: list[str] = []
    SubprocessRunner().run(invocation, {}, lines.append)
    assert [line.strip() for line in lines if line.strip()] == ["customer_orders"]


def test_edited_model_makes_the_manifest_stale(example_project_copy: DbtProject) -> None:
    index = ManifestIndex.load(example_project_copy.manifest_path)
    spec = index.model("stg_orders")
    model_file = example_project_copy.project_dir / spec.original_file_path
    model_file.write_text(model_file.read_text() + "\nwhere status <> 'returned'\n")
    with pytest.raises(StaleManifest, match="dbt parse"):
        index.check_fresh(example_project_copy.project_dir, spec, adapter_type="duckdb")


def test_unknown_model_lists_close_matches(example_project: DbtProject) -> None:
    with pytest.raises(ModelNotFound, match="did you mean 'stg_orders'"):
        ManifestIndex.load(example_project.manifest_path).model("stg_order")


def test_postgres_profile_carries_the_token_only_as_env_var(tmp_path: Path) -> None:
    fields = {"host": "127.0.0.1", "user": "svc", "dbname": "warehouse", "schema": "analytics"}
    folder = write_profiles_dir(render_profile("postgres", fields, "idbt_example", "prod"), tmp_path / "profiles")
    text = (folder / "profiles.yml").read_text()
    assert "password: '{{ env_var(''DBT_ENV_SECRET_IDBT_TOKEN'') }}'" in text
    assert TOKEN not in text


def test_documented_profile_snippet_runs_a_model(warehouse: Warehouse, built: dict[str, RunResult]) -> None:
    """docs/warehouses/duckdb.md's profiles.yml as a user would write it, named after the example project."""
    import yaml

    from airflow_provider_idbt.warehouses.duckdb import PROFILE_SNIPPET

    ((_, profile),) = yaml.safe_load(PROFILE_SNIPPET).items()
    profiles_dir = write_profiles_dir({"idbt_example": profile}, warehouse.workdir / "snippet_profiles")
    invocation = warehouse.invocation("stg_orders")
    invocation = dataclasses.replace(invocation, profiles_dir=str(profiles_dir), target=profile["target"])
    result = warehouse.run(invocation)
    assert result.status == "success", warehouse.lines[-20:]
    assert [node.unique_id for node in result.nodes] == ["model.idbt_example.stg_orders"]

