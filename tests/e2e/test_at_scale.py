"""End to end at scale: a generated 50-model dbt project run by a real scheduler, and a DAG author's mistakes
shown where Airflow shows them.

One deployment: `airflow scheduler`, `dag-processor`, `triggerer` and `api-server` as separate processes,
LocalExecutor with two slots and a fresh PostgreSQL metadata database. The dbt project (5 seeds, a snapshot, 50 models
in three folders, schema, singular and relationships tests, tags and `meta.idbt` settings, an on-run-start hook)
writes to a fresh PostgreSQL database of its own, so two tasks can write at once (DuckDB takes one writer at a
time); `idbt prepare` builds its manifest. The DAG file is tests/e2e/dags/idbt_at_scale.py; copies of
tests/e2e/dags/idbt_at_scale_broken.py make one mistake each. The figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, free_port
from airflow_provider_idbt.dbt.warm import stop_workers
from bench.live_airflow import LiveAirflow
from bench.synthetic_project import (
    PG_DATABASE_ENV,
    PG_HOST,
    PG_USER,
    SyntheticProject,
    create_pg_database,
    generate,
)
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO
from tests.fixtures.leak_scan import scan_files_for_secrets

pytestmark = pytest.mark.e2e

IDBT = str(Path(sys.executable).with_name("idbt"))
MODELS, SEEDS = 50, 5
AUDIENCE = "idbt-e2e-scale"
DAG_ID, AFTER_DAG_ID, RUN_ID = "idbt_nightly", "idbt_after_revenue", "nightly_1"
SELECTOR_DAG_ID = "idbt_nightly_by_selector"
GROUP = "analytics"
HOOKS_TASK = f"{GROUP}.on_run_start"
ENVIRONMENT = "prod"  # what the deployment's Variable says; the DAG file falls back to dev
REVENUE = "model.idbt_bench.mart_0000"  # finance's model, the one the second DAG is scheduled on
BROKEN_CASES = {
    "selection": "the selection (select='tag:no_such_tag') matches no model, seed or snapshot",
    "cycle": "dependency cycle: ",
    "missing": "is unreadable (No such file or directory); run `dbt parse`",
    "truncated": "truncated",
    "other_project": "was built for project 'idbt_bench' but",
    "unreachable": "the manifest storage at s3://idbt-nowhere/nightly/ cannot be reached",
}
# What a team's project carries: the tags the DAG selects by, and meta.idbt task settings.
FINANCE = {"identity_conn_id": "idbt_finance", "pool": "idbt_finance", "owner": "finance", "retries": 2}
MODEL_CONFIG: dict[str, dict[str, Any]] = {
    **{f"mart_{i:04d}": {"tags": ["nightly"]} for i in range(1, 11)},
    "mart_0000": {"tags": ["nightly", "finance"], "meta": {"idbt": FINANCE}},
    "mart_0011": {"tags": ["nightly", "deprecated"]},
    "int_0003": {"meta": {"idbt": {"owner": "platform", "retries": 0}}},
}
# Most models have a schema test; most staging models do not (fewer test tasks to run in the time budget).
# The DAG's select= and exclude= as one YAML selector of the project.
SELECTORS = [
    {
        "name": "nightly",
        "description": "the nightly models, everything upstream of them, nothing deprecated",
        "definition": {
            "union": [
                {"method": "tag", "value": "nightly", "parents": True},
                {"exclude": [{"method": "tag", "value": "deprecated"}]},
            ]
        },
    }
]
UNTESTED = (*(f"stg_{i:04d}" for i in range(1, 20)), "int_0007", "mart_0004")
# Reads no invocation results, so the task group runs it once per DAG run, in its own first task.
ON_RUN_START = [
    "create schema if not exists {{ target.schema }}",
    "create table if not exists {{ target.schema }}.idbt_dag_runs (invocation_id text, at timestamp default now())",
    "insert into {{ target.schema }}.idbt_dag_runs (invocation_id) values ('{{ invocation_id }}')",
]
_OUTPUT = """\
    {name}:
      type: postgres
      host: {host}
      port: 5432
      user: {user}
      password: "{{{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN', 'parse') }}}}"
      dbname: "{{{{ env_var('{database_env}') }}}}"
      schema: idbt_{name}
      threads: 1
"""
PROFILES = "idbt_bench:\n  target: dev\n  outputs:\n" + "".join(
    _OUTPUT.format(name=name, host=PG_HOST, user=PG_USER, database_env=PG_DATABASE_ENV) for name in ("dev", "prod")
)
POOLS = {
    "idbt_warehouse": {"slots": 2, "description": "dbt writers", "include_deferred": False},
    "idbt_finance": {"slots": 1, "description": "the finance team's models", "include_deferred": False},
}


@dataclass
class ScaleRun:
    home: Path
    manifest: dict[str, Any]
    state: str
    outcome: DagRunOutcome
    instances: dict[str, dict[str, Any]]
    xcoms: dict[str, Any]
    serialized: dict[str, dict[str, Any]]
    by_selector: dict[str, dict[str, Any]]
    after_runs: list[dict[str, Any]]
    after_values: list[Any]
    asset_events: list[dict[str, Any]]
    import_errors: dict[str, str]
    hook_rows: int
    tables: dict[str, set[str]]
    dumps: list[bytes] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


@dataclass
class _Deployment(LiveAirflow):
    """LiveAirflow that imports its pools while the api-server starts, and starts the scheduler and dag-processor
    only once ``ready`` (the project's parse, run meanwhile) is done."""

    ready: Future[Any] | None = None
    pools: Path | None = None

    def start_api_server(self, timeout: float = 120) -> None:
        with ThreadPoolExecutor(1) as pool:
            imported = pool.submit(self.airflow, "pools", "import", str(self.pools)) if self.pools else None
            super().start_api_server(timeout)
            if imported is not None:
                imported.result()
        if self.ready is not None:
            self.ready.result()


def _psql(database: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", database, "-AtXqc", sql], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _dump(database: str) -> bytes:
    return subprocess.run(
        ["pg_dump", "-h", PG_HOST, "-U", PG_USER, "--data-only", database], capture_output=True, check=True
    ).stdout


def _rows(airflow: LiveAirflow, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in airflow.query(sql, **params)]


def _wait(what: str, check: Callable[[], Any], airflow: LiveAirflow, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow._check_services()
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what} did not happen in {timeout:.0f}s; see {airflow.home}")


def _write_broken_manifests(project_dir: Path, broken: Path) -> None:
    """What the broken DAG files read: a manifest with a cycle and one cut short (the missing one is not written)."""
    text = (project_dir / "target" / "manifest.json").read_text()
    manifest = json.loads(text)
    # int_0000 reads stg_0000; now stg_0000 reads int_0000 too.
    manifest["nodes"]["model.idbt_bench.stg_0000"]["depends_on"]["nodes"].append("model.idbt_bench.int_0000")
    for case, content in (("cycle", json.dumps(manifest)), ("truncated", text[: len(text) // 3])):
        (broken / case).mkdir(parents=True)
        (broken / case / "manifest.json").write_text(content)


def _dead_s3_connection() -> str:
    """An S3 connection to a closed port that gives up at once (one attempt, no back-off)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "AKIDNOWHERE",
            "password": "not-a-secret",
            "extra": {
                "endpoint_url": f"http://127.0.0.1:{free_port()}",
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 1},
            },
        }
    )


def _project(root: Path, warehouse_db: str) -> SyntheticProject:
    project = generate(
        root,
        MODELS,
        adapter="postgres",
        pg_database=warehouse_db,
        seeds=SEEDS,
        untested=UNTESTED,
        model_config=MODEL_CONFIG,
        extra_tests=True,
        on_run_start=ON_RUN_START,
        snapshot={"tags": ["nightly"]},
        selectors=SELECTORS,
    )
    (project.project_dir / "profiles.yml").write_text(PROFILES)
    return project


def _idbt_prepare(project: SyntheticProject, env: dict[str, str]) -> None:
    """What the deployment's CI runs: the manifest for the target it deploys (the Assets name its tables), the
    partial parse file and the slim index."""
    folder = str(project.project_dir)
    done = subprocess.run(
        [IDBT, "prepare", "--project-dir", folder, "--profiles-dir", folder, "--target", ENVIRONMENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _import_errors(airflow: LiveAirflow) -> dict[str, str] | None:
    """File name -> stack trace of each import error, once every broken DAG file has one."""
    found = {Path(r["filename"]).name: r["stacktrace"] for r in _rows(airflow, "select * from import_error")}
    return found if len(found) >= len(BROKEN_CASES) else None


def _serialized_upstream(airflow: LiveAirflow, dag_id: str) -> dict[str, dict[str, Any]]:
    """task_id -> the serialized operator as the scheduler reads it, with its ``upstream`` task ids added."""
    (row,) = airflow.query(
        "select data from serialized_dag where dag_id = :d order by last_updated desc limit 1", d=dag_id
    )
    data = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    tasks = {task["__var"]["task_id"]: dict(task["__var"], upstream=set()) for task in data["dag"]["tasks"]}
    for task_id, task in tasks.items():
        for child in task.get("downstream_task_ids", []):
            tasks[child]["upstream"].add(task_id)
    return tasks


def _collect(airflow: LiveAirflow, project: SyntheticProject, state: str, warehouse_db: str) -> ScaleRun:
    ours = {"d": DAG_ID, "r": RUN_ID}
    after = _wait(
        f"a finished run of {AFTER_DAG_ID}",
        lambda: _rows(
            airflow,
            "select run_id, state, queued_at from dag_run where dag_id = :d and state in ('success', 'failed')",
            d=AFTER_DAG_ID,
        ),
        airflow,
    )
    instances = _rows(
        airflow,
        "select task_id, state, try_number, max_tries, pool, start_date, end_date from task_instance "
        "where dag_id = :d and run_id = :r",
        **ours,
    )
    xcoms = _rows(
        airflow, "select task_id, value from xcom where dag_id = :d and run_id = :r and key = 'return_value'", **ours
    )
    tables = "select table_name from information_schema.tables where table_schema = '{}'"
    return ScaleRun(
        home=airflow.home.parent,
        manifest=json.loads(project.manifest_path.read_text()),
        state=state,
        outcome=DagRunOutcome(DAG_ID, RUN_ID, state, "", airflow.home / "logs"),
        instances={row["task_id"]: row for row in instances},
        xcoms={row["task_id"]: row["value"] for row in xcoms},
        serialized=_serialized_upstream(airflow, DAG_ID),
        by_selector=_serialized_upstream(airflow, SELECTOR_DAG_ID),
        after_runs=after,
        after_values=[
            row["value"] for row in _rows(airflow, "select value from xcom where dag_id = :d", d=AFTER_DAG_ID)
        ],
        asset_events=_rows(
            airflow,
            "select a.uri, e.source_dag_id, e.source_task_id, e.source_run_id "
            "from asset_event e join asset a on a.id = e.asset_id",
        ),
        import_errors=_wait("an import error for every broken DAG file", lambda: _import_errors(airflow), airflow),
        hook_rows=int(_psql(warehouse_db, "select count(*) from idbt_prod.idbt_dag_runs")),
        tables={
            schema: set(_psql(warehouse_db, tables.format(schema)).split()) for schema in ("idbt_prod", "idbt_dev")
        },
    )


def _print(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Shown even when pytest captures output: the figures are for the reader of the CI log."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(*lines, sep="\n")
        return
    with capture.global_and_fixture_disabled():
        print("", *lines, sep="\n", flush=True)


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ScaleRun]:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    started = time.perf_counter()
    timings: dict[str, float] = {}
    home = tmp_path_factory.mktemp("at-scale")
    dags, broken, warm = home / "dags", home / "broken", home / "warm"
    dags.mkdir()
    for name in ("idbt_at_scale.py", "idbt_at_scale_selector.py"):
        shutil.copy(REPO / "tests" / "e2e" / "dags" / name, dags)
    for case in BROKEN_CASES:
        shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_at_scale_broken.py", dags / f"idbt_broken_{case}.py")
    (home / "pools.json").write_text(json.dumps(POOLS))
    suffix = f"{os.getpid()}_{os.urandom(3).hex()}"
    metadata_db, warehouse_db = f"idbt_e2e_scale_meta_{suffix}", f"idbt_e2e_scale_wh_{suffix}"
    project = _project(home / "project", warehouse_db)
    clients = {
        name: DevClient(
            f"{name}-runner", f"{name}-{os.urandom(12).hex()}", subject=f"svc-{name}", audiences=(AUDIENCE,)
        )
        for name in ("dev", "prod", "finance")
    }
    try:
        create_pg_database(metadata_db)
        create_pg_database(warehouse_db)
        with DevIdentityProvider(list(clients.values()), audiences=[AUDIENCE], token_lifetime=3600).start() as idp:
            env = {
                "IDBT_ALLOW_DEV_IDP": "1",
                "IDBT_SCALE_PROJECT_DIR": str(project.project_dir),
                "IDBT_SCALE_BROKEN_DIR": str(broken),
                "IDBT_EXAMPLE_PROJECT_DIR": str(EXAMPLE_PROJECT),
                PG_DATABASE_ENV: warehouse_db,
                "IDBT_WARM_DIR": str(warm),
                "AIRFLOW_VAR_IDBT_ENVIRONMENT": ENVIRONMENT,
                **{f"AIRFLOW_CONN_IDBT_{name.upper()}": json.dumps(idp.connection(c)) for name, c in clients.items()},
                "AIRFLOW_CONN_IDBT_DEAD_S3": _dead_s3_connection(),
                "AIRFLOW__IDBT__MANIFEST_CACHE_DIR": str(home / "manifest-cache"),
                # Each DAG file is parsed once: nothing edits them during the test.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            }

            def prepare() -> None:
                begun = time.perf_counter()
                _idbt_prepare(project, {**project.env(), **env})
                _write_broken_manifests(project.project_dir, broken)
                timings["idbt prepare (during airflow db migrate)"] = time.perf_counter() - begun

            airflow = _Deployment(
                home=home / "airflow",
                dags_folder=dags,
                extra_env=env,
                sql_alchemy_conn=f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:5432/{metadata_db}",
                parallelism=2,
                pools=home / "pools.json",
            )
            try:
                with ThreadPoolExecutor(1) as pool:
                    airflow.ready = pool.submit(prepare)
                    airflow.start()
                timings["deployment up"] = time.perf_counter() - started
                airflow.wait_for_dags([DAG_ID, AFTER_DAG_ID, SELECTOR_DAG_ID])
                timings["DAGs serialized"] = time.perf_counter() - started
                airflow.airflow("dags", "trigger", DAG_ID, "--run-id", RUN_ID)
                run = airflow.wait_for_run(DAG_ID, RUN_ID, timeout=600)
                timings["DAG run, queued to done"] = run.wall
                result = _collect(airflow, project, run.state, warehouse_db)
            finally:
                airflow.stop()
                stop_workers(warm)
            result.secrets = [*idp.issued_tokens, *(client.client_secret for client in clients.values())]
        result.dumps = [_dump(metadata_db), _dump(warehouse_db)]
        timings["set-up and run, in all"] = time.perf_counter() - started
        one, five, _ = os.getloadavg()
        _print(
            request,
            [f"[at scale] {name}: {seconds:.1f} s" for name, seconds in timings.items()]
            + [f"[at scale] {len(result.instances)} tasks, 2 slots; load average {one:.2f} (1 min) {five:.2f} (5 min)"],
        )
        yield result
    finally:
        for database in (metadata_db, warehouse_db):
            _psql("postgres", f"drop database if exists {database} with (force)")


# --- what the run should have been, from the manifest alone ---------------------------------------------------


@dataclass(frozen=True)
class Expected:
    runs: frozenset[str]  # unique ids of the selected models, seeds and snapshots
    tests: frozenset[str]  # unique ids of the selected tests
    task_of: Mapping[str, str]  # model, seed or snapshot -> its task id
    tests_of: Mapping[str, frozenset[str]]  # test task id -> the tests it runs
    upstream: Mapping[str, frozenset[str]]  # task id -> the task ids it waits for


def _parents(nodes: Mapping[str, Any], uid: str) -> list[str]:
    return list(nodes[uid]["depends_on"].get("nodes", []))  # a seed depends on nothing


def _ancestors(nodes: Mapping[str, Any], uid: str) -> set[str]:
    found: set[str] = set()
    stack = _parents(nodes, uid)
    while stack:
        parent = stack.pop()
        if parent in nodes and parent not in found:
            found.add(parent)
            stack.extend(_parents(nodes, parent))
    return found


def expected(manifest: Mapping[str, Any]) -> Expected:
    """`+tag:nightly` minus `tag:deprecated`; seeds, snapshots and models as tasks; each test in one task after
    the node every other node it reads is upstream of, or else in a task of its own after all of them."""
    nodes = manifest["nodes"]
    nightly = {uid for uid, node in nodes.items() if node["resource_type"] != "test" and "nightly" in node["tags"]}
    selected = nightly.union(*(_ancestors(nodes, uid) for uid in nightly))
    runs = {uid for uid in selected if "deprecated" not in nodes[uid]["tags"]}
    tests = {
        uid for uid, node in nodes.items() if node["resource_type"] == "test" and set(_parents(nodes, uid)) <= runs
    }

    def task_id(uid: str) -> str:
        return ".".join([GROUP, *nodes[uid]["path"].split("/")[:-1], nodes[uid]["name"]])

    task_of = {uid: task_id(uid) for uid in runs}
    upstream = {HOOKS_TASK: frozenset[str]()}
    for uid in runs:
        upstream[task_of[uid]] = frozenset({task_of[p] for p in _parents(nodes, uid) if p in runs} or {HOOKS_TASK})
    tests_of: dict[str, set[str]] = {}
    for test in tests:
        parents = set(_parents(nodes, test))
        home = next((p for p in parents if parents - {p} <= _ancestors(nodes, p)), None)
        if home is not None:
            task, after = f"{task_of[home]}__test", {task_of[home]}
        else:
            task, after = f"{GROUP}.marts.test__{nodes[test]['name']}", {task_of[p] for p in parents}
        tests_of.setdefault(task, set()).add(test)
        upstream[task] = frozenset(after)
    return Expected(
        frozenset(runs), frozenset(tests), task_of, {k: frozenset(v) for k, v in tests_of.items()}, upstream
    )


@pytest.fixture(scope="module")
def want(scale_run: ScaleRun) -> Expected:
    return expected(scale_run.manifest)


# --- the run ----------------------------------------------------------------------------------------------------


def test_the_selection_became_exactly_the_tasks_and_each_succeeded_on_try_1(
    scale_run: ScaleRun, want: Expected
) -> None:
    failed = sorted(task for task, row in scale_run.instances.items() if row["state"] != "success")
    assert scale_run.state == "success", failed
    assert set(scale_run.instances) == set(scale_run.serialized) == set(want.upstream)
    assert {row["try_number"] for row in scale_run.instances.values()} == {1}
    # 50 models, 5 seeds and a snapshot; the selection leaves out the one staging model no mart reads and the
    # deprecated mart.
    kinds = Counter(uid.split(".")[0] for uid in want.runs)
    assert kinds == Counter({"model": MODELS - 2, "seed": SEEDS, "snapshot": 1})
    assert len(want.tests) > 25
    assert not [task for task in scale_run.instances if task.endswith(("mart_0011", "stg_0018"))]


def test_each_node_ran_once_with_its_own_command_and_each_test_passed_once_in_its_test_task(
    scale_run: ScaleRun, want: Expected
) -> None:
    xcoms = scale_run.xcoms
    built = [x for x in xcoms.values() if x["command"] in ("run", "seed", "snapshot")]
    assert Counter(x["model"] for x in built) == Counter(want.runs)
    assert {x["node_status"] for x in built} == {"success"}
    assert {x["command"] for x in built} == {"run", "seed", "snapshot"}
    assert all(x["command"] == x["model"].split(".")[0] for x in built if not x["model"].startswith("model."))
    assert not [x for x in built if x["tests"]]
    for task_id, tests in want.tests_of.items():
        assert xcoms[task_id]["command"] == "test"
        assert {t["unique_id"] for t in _tests_in(xcoms[task_id])} == tests, task_id
    ran = [t for x in xcoms.values() for t in _tests_in(x)]
    assert Counter(t["unique_id"] for t in ran) == Counter(want.tests)
    assert {t["status"] for t in ran} == {"pass"}
    nodes = scale_run.manifest["nodes"]
    kinds = Counter((nodes[t["unique_id"]].get("test_metadata") or {}).get("name", "singular") for t in ran)
    assert (kinds["relationships"], kinds["singular"]) == (1, 2)
    # The relationships test reads int_0000 and stg_0000: it runs once, after int_0000, which reads stg_0000.
    relationships = next(t for t in ran if "relationships" in t["unique_id"])["unique_id"]
    assert want.tests_of[f"{want.task_of['model.idbt_bench.int_0000']}__test"] >= {relationships}


def _tests_in(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tests a task's result object says it ran (a task of one test lists that test too)."""
    return list(result.get("tests", []))


def test_tasks_wait_for_what_the_manifest_says_they_read(scale_run: ScaleRun, want: Expected) -> None:
    loose = [task for task in want.tests_of if not task.endswith("__test")]
    assert len(loose) == 1 and len(want.upstream[loose[0]]) == 2  # the singular test across two marts
    for task_id, upstream in want.upstream.items():
        assert scale_run.serialized[task_id]["upstream"] == upstream, task_id
        mine = scale_run.instances[task_id]
        for parent in upstream:
            assert mine["start_date"] >= scale_run.instances[parent]["end_date"], (parent, task_id)


def test_the_project_hook_ran_once_in_the_first_task(scale_run: ScaleRun) -> None:
    assert scale_run.hook_rows == 1
    first = scale_run.instances[HOOKS_TASK]
    assert all(
        first["end_date"] <= row["start_date"] for task, row in scale_run.instances.items() if task != HOOKS_TASK
    )


def test_every_model_task_logged_who_ran_it_reading_what_and_writing_what(scale_run: ScaleRun, want: Expected) -> None:
    ends = [e for e in scale_run.outcome.events() if e["kind"] == "model_run" and e["phase"] == "end"]
    by_task = {e["task_id"]: e for e in ends}
    assert len(ends) == len(by_task) == len(want.upstream)
    nodes = scale_run.manifest["nodes"]
    for uid, task_id in want.task_of.items():
        event = by_task[task_id]
        assert event["status"] == "success" and event["model"]["unique_id"] == uid
        assert event["identity"]["subject"] == ("svc-finance" if uid == REVENUE else f"svc-{ENVIRONMENT}"), task_id
        assert event["identity"]["fingerprint"].startswith("sha256:")
        assert event["model"]["outputs"] == [nodes[uid]["relation_name"].replace('"', "")]
        assert len(event["model"]["inputs"]) == len(_parents(nodes, uid)), task_id
    for task_id in want.tests_of:
        # A test task reads what it tests and writes nothing; finance's model is tested as finance.
        assert by_task[task_id]["model"]["inputs"] and not by_task[task_id]["model"]["outputs"], task_id
        finance = task_id == f"{want.task_of[REVENUE]}__test"
        assert by_task[task_id]["identity"]["subject"] == ("svc-finance" if finance else f"svc-{ENVIRONMENT}")


def test_the_environment_variable_chose_the_identity_and_the_target(scale_run: ScaleRun, want: Expected) -> None:
    names = {scale_run.manifest["nodes"][uid]["name"] for uid in want.runs}
    assert names <= scale_run.tables["idbt_prod"]
    assert not scale_run.tables["idbt_dev"]
    subjects = Counter(e["identity"]["subject"] for e in scale_run.outcome.events() if e["kind"] == "token_issued")
    # One token per task: finance's model and its tests as finance, every other task as the environment's identity.
    assert subjects == Counter({f"svc-{ENVIRONMENT}": len(want.upstream) - 2, "svc-finance": 2})


def test_per_model_settings_reached_the_task_instances(scale_run: ScaleRun, want: Expected) -> None:
    special = {
        # meta.idbt: finance's pool, owner and retries 2; node_settings in the DAG file says 3, and wins.
        want.task_of[REVENUE]: ("idbt_finance", 3, "finance"),
        want.task_of["model.idbt_bench.int_0003"]: ("idbt_warehouse", 0, "platform"),
    }
    special |= {f"{task}__test": settings for task, settings in special.items()}  # a node's tests run as it does
    for task_id, row in scale_run.instances.items():
        owner = scale_run.serialized[task_id].get("owner", "airflow")
        assert (row["pool"], row["max_tries"], owner) == special.get(task_id, ("idbt_warehouse", 1, "airflow")), task_id


def test_the_dag_scheduled_on_the_marts_asset_ran_after_the_mart_was_built(scale_run: ScaleRun, want: Expected) -> None:
    revenue = want.task_of[REVENUE]
    (run,) = scale_run.after_runs
    assert run["state"] == "success"
    assert run["queued_at"] >= scale_run.instances[revenue]["end_date"]
    assert scale_run.after_values == [[f"{DAG_ID}.{revenue}"]]
    (uri,) = {event["uri"] for event in scale_run.asset_events if event["source_task_id"] == revenue}
    end = next(
        e
        for e in scale_run.outcome.events()
        if e["kind"] == "model_run" and e["task_id"] == revenue and e["phase"] == "end"
    )
    # The Asset is the dataset the task's events name (OpenLineage's namespace and name).
    assert uri == f"{end['model']['namespace']}/{end['model']['outputs'][0].replace('.', '/')}"


def _selector_dag(scale_run: ScaleRun) -> tuple[set[str], set[str], set[str]]:
    """The selector DAG's node tasks, test tasks, and leaves (node tasks no node task waits for)."""
    tasks = scale_run.by_selector
    tests = {task_id for task_id, task in tasks.items() if task["task_type"] == "DbtIdentityTestOperator"}
    nodes = set(tasks) - tests - {HOOKS_TASK}
    leaves = {task for task in nodes if not set(tasks[task].get("downstream_task_ids", [])) & nodes}
    return nodes, tests, leaves


def test_the_yaml_selector_selects_the_same_nodes_and_tests(scale_run: ScaleRun, want: Expected) -> None:
    nodes, tests, _ = _selector_dag(scale_run)
    assert {task.rsplit(".", 1)[-1] for task in nodes} == {t.rsplit(".", 1)[-1] for t in want.task_of.values()}
    assert {test for task in tests for test in scale_run.by_selector[task]["tests"]} == want.tests


def test_after_all_puts_each_nodes_test_task_after_every_node(scale_run: ScaleRun) -> None:
    _, tests, leaves = _selector_dag(scale_run)
    homed = {task for task in tests if task.endswith("__test")}
    assert len(leaves) > 5 and len(homed) == len(tests) - 1
    assert {frozenset(scale_run.by_selector[task]["upstream"]) for task in homed} == {frozenset(leaves)}


def test_after_all_puts_a_test_of_two_unrelated_models_after_every_node(scale_run: ScaleRun) -> None:
    _, tests, leaves = _selector_dag(scale_run)
    (loose,) = {task for task in tests if not task.endswith("__test")}
    assert scale_run.by_selector[loose]["upstream"] == leaves


@pytest.mark.parametrize("case", sorted(BROKEN_CASES))
def test_a_broken_dag_file_shows_the_clear_message_as_its_import_error(scale_run: ScaleRun, case: str) -> None:
    stacktrace = scale_run.import_errors[f"idbt_broken_{case}.py"]
    assert f"task group `{GROUP}`: " in stacktrace
    assert BROKEN_CASES[case] in stacktrace, stacktrace[-2000:]


def test_only_the_broken_dag_files_have_import_errors(scale_run: ScaleRun) -> None:
    assert set(scale_run.import_errors) == {f"idbt_broken_{case}.py" for case in BROKEN_CASES}


def test_no_issued_token_or_client_secret_anywhere(scale_run: ScaleRun) -> None:
    assert len(scale_run.secrets) > len(scale_run.instances), "the scan needs the real issued tokens"
    needles = [secret.encode() for secret in scale_run.secrets]
    assert scan_files_for_secrets(scale_run.home, scale_run.secrets) > 100
    for dump in scale_run.dumps:  # the metadata database and the warehouse
        assert len(dump) > 10_000
        for needle in needles:
            assert needle not in dump, "a secret leaked into a database"
