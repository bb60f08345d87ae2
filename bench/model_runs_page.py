"""How long the "Model runs" page's data and the audit export take for a 500-model DAG run.

A real supervised run (`airflow dags test --use-executor`, LocalExecutor, PostgreSQL metadata, the dev identity
provider, a 3-model DuckDB project) gives the rows the operator really writes: task_instance, task_instance_history
and the `idbt_events` XCom of each try. Those rows are then copied, in the database, into ``--runs`` DAG runs of
``--models`` model tasks each (``--retried`` of every hundred with an earlier failed try in task_instance_history),
each copy's events renamed to its own task and model. A 500-model run needs no 500 dbt processes to be read back:
what the page costs depends on the rows, not on how they were made.

Timed in a fresh Python process with the deployment's configuration, as the api-server would call it: the first
call (imports included) and then the median of ``--repeat`` calls of ``model_runs`` for one run's page, the export
of the whole period (``export_rows`` + ``to_csv``/``to_json``), an identity filter (applied after the events are
read), the wall time of the ``idbt audit --since`` command, and the HTML page fetched from a real api-server.
Figures are printed and written to docs/performance.md (``--no-write``: printed only).

    python -m bench.model_runs_page [--models 500] [--runs 3] [--retried 10] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_provider_idbt.commands.local_airflow import LocalAirflow
from bench.doc_sections import write_section
from bench.synthetic_project import PG_HOST, PG_USER, create_pg_database, prepare

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
UI_USER = "bench"
BEGIN = "<!-- bench/model_runs_page.py: begin (generated; do not edit by hand) -->"
END = "<!-- bench/model_runs_page.py: end -->"

AUDIENCE = "idbt-bench-model-runs"
DAG_ID = "idbt_bench_model_runs"
DAG_SOURCE = '''\
"""Benchmark DAG (airflow): the source of real Model runs rows."""
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_idbt import DbtIdentityTaskGroup

PROJECT_DIR = Path(os.environ["IDBT_BENCH_PROJECT_DIR"])

with DAG("idbt_bench_model_runs", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    DbtIdentityTaskGroup(
        group_id="bench",
        project_dir=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
        identity_conn_id="idbt_bench",
        profiles_dir=PROJECT_DIR,
        operator_kwargs={"pool": "idbt_duckdb"},
    )
'''
IDBT = str(Path(sys.executable).with_name("idbt"))


def _source_run(root: Path, metadata_url: str) -> LocalAirflow:
    """The real run whose rows every copy starts from; returns the (stopped) installation."""
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    project = prepare(root / "project", 3, tests=False)
    dags = root / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_SOURCE)
    client = DevClient(
        client_id="bench-runner",
        client_secret=os.urandom(16).hex(),
        subject="svc-bench",
        groups=("analytics", "engineering"),
        audiences=(AUDIENCE,),
    )
    with DevIdentityProvider(clients=[client], audiences=[AUDIENCE], token_lifetime=3600).start() as idp:
        env = {
            **{k: v for k, v in project.env().items() if k.startswith("IDBT_")},
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_BENCH_PROJECT_DIR": str(project.project_dir),
            "AIRFLOW_CONN_IDBT_BENCH": json.dumps(idp.connection(client)),
            # The page is timed over HTTP too, signed in as this user of Airflow's simple auth manager.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:viewer",
        }
        airflow = LocalAirflow(home=root / "airflow", dags_folder=dags, extra_env=env, sql_alchemy_conn=metadata_url)
        with airflow:
            airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
            outcome = airflow.run_dag(DAG_ID)
    # One successful model task is all the copies need (another of the three may fail: that is no figure).
    if not any(e.get("kind") == "model_run" and e.get("status") == "success" for e in outcome.events()):
        raise RuntimeError(f"no model of the source run succeeded ({outcome.state}):\n{outcome.output[-3000:]}")
    return airflow


def _columns(db: Any, table: str) -> list[str]:
    from sqlalchemy import text

    rows = db.execute(
        text("select column_name from information_schema.columns where table_name = :t order by ordinal_position"),
        {"t": table},
    )
    return [row[0] for row in rows]


def _copy_rows(metadata_url: str, runs: int, models: int, retried: int) -> dict[str, Any]:
    """``runs`` DAG runs of ``models`` model tasks, copies of the source run's first model task; returns what
    the copies are (run ids, their period)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(metadata_url)
    with engine.begin() as db:
        source = db.execute(
            text(
                "select ti.task_id, ti.run_id, dr.id, x.value from task_instance ti "
                "join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id "
                "join xcom x on x.dag_run_id = dr.id and x.task_id = ti.task_id and x.key = 'idbt_events' "
                "where ti.dag_id = :d and ti.state = 'success' order by ti.task_id limit 1"
            ),
            {"d": DAG_ID},
        ).one()
        task_id, run_id, run_pk, value = source
        # Stored as the operator's push left it: a JSON array, or JSON text of one (kept as found).
        as_text = isinstance(value, str)
        events: list[dict[str, Any]] = json.loads(str(value)) if as_text else list(value)  # type: ignore[call-overload]
        unique_id = next(e["model"]["unique_id"] for e in events if e.get("model"))
        run_columns = [c for c in _columns(db, "dag_run") if c != "id"]
        ti_columns = _columns(db, "task_instance")
        tih_columns = [c for c in _columns(db, "task_instance_history") if c != "id"]
        copied = []
        for number in range(runs):
            new_run = f"bench_{number:02d}"
            # An hour after the source run, ten minutes apart: the period of the copies holds no source row.
            shift = f"interval '{60 + number * 10} minutes'"
            replaced = {
                "run_id": f"'{new_run}'",
                "logical_date": f"logical_date + {shift} + interval '1 day'",
                "queued_at": f"queued_at + {shift}",
                "start_date": f"start_date + {shift}",
                "end_date": f"end_date + {shift}",
            }
            select = ", ".join(replaced.get(c, c) for c in run_columns)
            (new_pk,) = db.execute(
                text(
                    f"insert into dag_run ({', '.join(run_columns)}) select {select} from dag_run where id = :pk "
                    "returning id"
                ),
                {"pk": run_pk},
            ).one()
            names = [f"bench.model_{i:04d}" for i in range(models)]
            for index, name in enumerate(names):
                again = index % 100 < retried
                ti_replaced = {
                    "id": "gen_random_uuid()",
                    "task_id": f"'{name}'",
                    "run_id": f"'{new_run}'",
                    "try_number": "2" if again else "try_number",
                    "start_date": f"start_date + {shift} + interval '{index} milliseconds'",
                    "end_date": f"end_date + {shift} + interval '{index} milliseconds'",
                }
                select = ", ".join(ti_replaced.get(c, c) for c in ti_columns)
                db.execute(
                    text(
                        f"insert into task_instance ({', '.join(ti_columns)}) select {select} from task_instance "
                        "where dag_id = :d and run_id = :r and task_id = :t"
                    ),
                    {"d": DAG_ID, "r": run_id, "t": task_id},
                )
                if again:
                    tih_replaced = {
                        "task_id": f"'{name}'",
                        "try_number": "1",
                        "state": "'failed'",
                        "start_date": "start_date - interval '1 minute'",
                        "end_date": "end_date - interval '1 minute'",
                        "task_instance_id": "id",
                    }
                    select = ", ".join(tih_replaced.get(c, c) for c in tih_columns)
                    db.execute(
                        text(
                            f"insert into task_instance_history ({', '.join(tih_columns)}) select {select} "
                            "from task_instance where dag_id = :d and run_id = :r and task_id = :t"
                        ),
                        {"d": DAG_ID, "r": new_run, "t": name},
                    )
            model = unique_id.rsplit(".", 1)[0]
            for index, name in enumerate(names):
                renamed = [
                    {
                        **e,
                        "run_id": new_run,
                        "task_id": name,
                        "try_number": 2 if index % 100 < retried else e["try_number"],
                        "model": {**e.get("model", {}), "unique_id": f"{model}.model_{index:04d}"},
                    }
                    for e in events
                ]
                db.execute(
                    text(
                        "insert into xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp) "
                        "values (:pk, :t, -1, 'idbt_events', :d, :r, cast(:v as jsonb), now())"
                    ),
                    {
                        "pk": new_pk,
                        "t": name,
                        "d": DAG_ID,
                        "r": new_run,
                        "v": json.dumps(json.dumps(renamed) if as_text else renamed),
                    },
                )
            copied.append(new_run)
        period = db.execute(
            text(
                "select min(start_date), max(end_date) from (select start_date, end_date from task_instance "
                "where dag_id = :d and run_id like 'bench_%' union all select start_date, end_date "
                "from task_instance_history where dag_id = :d and run_id like 'bench_%') tries"
            ),
            {"d": DAG_ID},
        ).one()
        sizes = db.execute(
            text("select count(*), sum(pg_column_size(value)) from xcom where key = 'idbt_events'")
        ).one()
    engine.dispose()
    return {"runs": copied, "since": period[0], "until": period[1], "xcoms": sizes[0], "xcom_bytes": sizes[1]}


_TIMER = """
import json, statistics, sys, time
started = time.perf_counter()
from sqlalchemy import event
from airflow.settings import engine
from airflow_provider_idbt.ui.model_runs import RunFilter, parse_filter, to_csv, to_json
from airflow_provider_idbt.ui.run_store import export_rows, model_runs
statements = []
event.listen(engine, "before_cursor_execute", lambda *a: statements.append(1))
page = RunFilter(dag_id=DAG_ID, run_id=RUN_ID)
rows = model_runs(page)
first = time.perf_counter() - started

def timed(call):
    values = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        result = call()
        values.append(time.perf_counter() - began)
    return statistics.median(values), min(values), max(values), result

before = len(statements)
page_s = timed(lambda: model_runs(page))
queries = (len(statements) - before) // REPEAT
period = parse_filter({"since": SINCE, "until": UNTIL})
export_s = timed(lambda: export_rows(period))
csv_s = timed(lambda: to_csv(export_s[3]))
json_s = timed(lambda: to_json(export_s[3]))
who = timed(lambda: model_runs(RunFilter(dag_id=DAG_ID, run_id=RUN_ID, identity="engineering")))
print("@@" + json.dumps({
    "first_call_s": first, "page": page_s[:3], "page_rows": len(rows), "queries_per_page": queries,
    "export": export_s[:3], "export_rows": len(export_s[3]), "to_csv": csv_s[:3], "csv_bytes": len(csv_s[3]),
    "to_json": json_s[:3], "json_bytes": len(json_s[3]), "identity_filter": who[:3], "identity_rows": len(who[3]),
}))
"""


def _time_in_process(airflow: LocalAirflow, run_id: str, since: str, until: str, repeat: int) -> dict[str, Any]:
    code = f"DAG_ID, RUN_ID, SINCE, UNTIL, REPEAT = {DAG_ID!r}, {run_id!r}, {since!r}, {until!r}, {repeat}\n" + _TIMER
    done = subprocess.run(
        [sys.executable, "-c", code], env=airflow.env(), cwd=airflow.home, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    figures: dict[str, Any] = json.loads(done.stdout.rsplit("@@", 1)[1])
    return figures


def _time_http(airflow: LocalAirflow, run_id: str, repeat: int) -> dict[str, Any]:
    """The HTML page of one run through the api-server, signed in: the first request (the plugin builds its app)
    and the median of ``repeat`` more, each the whole response read."""
    import urllib.request
    from urllib.parse import quote

    from airflow_provider_idbt.ui.query import DAG_RUN_LIST_PATH, URL_PREFIX

    airflow.start_api_server()
    try:
        base = f"http://127.0.0.1:{airflow.api_port}"
        password = json.loads((airflow.home / "simple_auth_manager_passwords.json.generated").read_text())[UI_USER]
        request = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": UI_USER, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            token = json.load(answer)["access_token"]
        path = URL_PREFIX + DAG_RUN_LIST_PATH.format(dag_id=DAG_ID, run_id=quote(run_id, safe=""))
        page = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}", "Accept": "text/html"})

        def once() -> tuple[float, int]:
            began = time.perf_counter()
            with urllib.request.urlopen(page, timeout=120) as answer:
                size = len(answer.read())
            return time.perf_counter() - began, size

        first, size = once()
        times = sorted(once()[0] for _ in range(repeat))
    finally:
        airflow.stop()
    return {"http_first_s": first, "http_page": [times[len(times) // 2], times[0], times[-1]], "http_bytes": size}


def _cli_export(airflow: LocalAirflow, since: str, until: str, out: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        [IDBT, "audit", "--since", since, "--until", until, "--format", "csv", "--output", str(out)],
        env=airflow.env(),
        cwd=airflow.home,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return time.perf_counter() - began


def _ms(triple: list[float]) -> str:
    median, low, high = triple
    return f"{median * 1000:.0f} ms ({low * 1000:.0f}-{high * 1000:.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=500, help="model tasks per DAG run (default 500)")
    parser.add_argument("--runs", type=int, default=3, help="DAG runs of that size in the database (default 3)")
    parser.add_argument("--retried", type=int, default=10, help="of every 100 tasks, how many had a failed try")
    parser.add_argument("--repeat", type=int, default=5, help="calls per timed figure (median, min-max)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary directory)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args(argv)
    if not 0 <= args.retried <= 100 or args.models < 1 or args.runs < 1:
        parser.error("--models and --runs take 1 or more, --retried 0 to 100")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="idbt-bench-model-runs-"))
    root.mkdir(parents=True, exist_ok=True)
    database = f"idbt_bench_model_runs_{os.getpid()}"
    metadata_url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:5432/{database}"
    create_pg_database(database)
    try:
        began = time.perf_counter()
        airflow = _source_run(root, metadata_url)
        source_s = time.perf_counter() - began
        began = time.perf_counter()
        copied = _copy_rows(metadata_url, args.runs, args.models, args.retried)
        copy_s = time.perf_counter() - began
        since = copied["since"].isoformat()
        until = (copied["until"] + timedelta(seconds=1)).isoformat()
        figures = _time_in_process(airflow, copied["runs"][0], since, until, args.repeat)
        cli_s = _cli_export(airflow, since, until, root / "export.csv")
        figures.update(_time_http(airflow, copied["runs"][0], args.repeat))
    finally:
        subprocess.run(
            ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", "postgres", "-qc", f"drop database if exists {database}"],
            capture_output=True,
        )
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    tries = args.models + sum(1 for index in range(args.models) if index % 100 < args.retried)
    one, five, _ = os.getloadavg()
    figures.update(source_s=source_s, copy_s=copy_s, cli_s=cli_s, tries=tries, load=(one, five), **copied)
    for line in _lines(args, figures):
        print(f"[model runs page] {line}")
    if not args.no_write:
        write_section(DOC, _section(args, figures), BEGIN, END, title="Performance")
        print(f"[model runs page] wrote its section of {DOC.relative_to(DOC.parents[1])}")
    return 0


def _lines(args: argparse.Namespace, f: dict[str, Any]) -> list[str]:
    one, five = f["load"]
    return [
        f"source run (3 real model tasks, supervised): {f['source_s']:.1f} s",
        f"copied into {args.runs} DAG runs x {args.models} model tasks ({args.retried}% with an earlier failed "
        f"try): {f['copy_s']:.1f} s; {f['xcoms']} idbt_events XComs, {f['xcom_bytes'] / f['xcoms']:.0f} bytes each",
        f"one run's page, first call in a new process (imports included): {f['first_call_s'] * 1000:.0f} ms",
        f"one run's page ({f['page_rows']} rows, expected {f['tries']}), model_runs: {_ms(f['page'])}, "
        f"{f['queries_per_page']} SQL statements",
        f"same page filtered by identity ({f['identity_rows']} rows): {_ms(f['identity_filter'])}",
        f"export of the period ({f['export_rows']} rows): export_rows {_ms(f['export'])}, to_csv {_ms(f['to_csv'])} "
        f"({f['csv_bytes'] / 1e6:.1f} MB), to_json {_ms(f['to_json'])} ({f['json_bytes'] / 1e6:.1f} MB)",
        f"idbt audit --since/--until --format csv --output (a new process): {f['cli_s']:.1f} s",
        f"the HTML page through the api-server ({f['http_bytes'] / 1e6:.1f} MB): first request "
        f"{f['http_first_s'] * 1000:.0f} ms, then {_ms(f['http_page'])}",
        f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)",
    ]


def _section(args: argparse.Namespace, f: dict[str, Any]) -> str:
    one, five = f["load"]
    rows = [
        ("one run's HTML page through `airflow api-server`, signed in", f"{f['http_bytes'] / 1e6:.1f} MB",
         _ms(f["http_page"])),
        ("the same, the api-server's first request (the plugin builds its app)", f"{f['http_bytes'] / 1e6:.1f} MB",
         f"{f['http_first_s'] * 1000:.0f} ms"),
        ("one run's rows: `model_runs` for one DAG run", f"{f['page_rows']} rows", _ms(f["page"])),
        ("the same page filtered by identity", f"{f['identity_rows']} rows", _ms(f["identity_filter"])),
        ("the first page of a new process (imports included)", f"{f['page_rows']} rows",
         f"{f['first_call_s'] * 1000:.0f} ms"),
        ("the period's export: `export_rows`", f"{f['export_rows']} rows", _ms(f["export"])),
        ("`to_csv` of it", f"{f['csv_bytes'] / 1e6:.1f} MB", _ms(f["to_csv"])),
        ("`to_json` of it", f"{f['json_bytes'] / 1e6:.1f} MB", _ms(f["to_json"])),
        ("`idbt audit --since/--until --format csv --output`, a new process", f"{f['export_rows']} rows",
         f"{f['cli_s']:.1f} s"),
    ]
    table = "\n".join(f"| {what} | {size} | {took} |" for what, size, took in rows)
    return f"""{BEGIN}

## The Model runs page for a 500-model run

`python -m bench.model_runs_page` (defaults: {args.runs} DAG runs of {args.models} model tasks, {args.retried}% of
them with an earlier failed try): a real supervised run (`airflow dags test --use-executor`, PostgreSQL metadata,
the dev identity provider) gives the rows the operator writes (task_instance, task_instance_history and each try's
`idbt_events` XCom, {f['xcom_bytes'] / f['xcoms']:.0f} bytes each); they are copied in the database into the larger
runs, each copy renamed to its own task and model. The HTML page is fetched from a real `airflow api-server`
signed in (rendering and transfer included); the rows and exports are timed in a fresh Python process with the
deployment's configuration, as the api-server calls them; each the median of {args.repeat} calls (min-max).
The page reads the metadata database only, in {f['queries_per_page']} SQL statements whatever the number of
models; it never opens a task log (the per-task-instance page does, for that task's earlier tries).

| what | size | time |
| --- | --- | --- |
{table}

{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min). The rendering of the HTML page and the
browser's load time are measured by tests/e2e/test_model_runs_browser.py (printed, never asserted); see
[the Model runs view](ui.md). No alternative offers this view: astronomer-cosmos shows dbt's own logs per task, and
Airflow's UI shows one task's log at a time, so the comparison is with reading every task log, which this page
never does.

{END}"""


if __name__ == "__main__":
    sys.exit(main())
