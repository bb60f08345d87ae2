"""`idbt demo`: the example dbt project run by Airflow, one task per model, on DuckDB and the dev IdP."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.commands.prepare import PrepareFailed, prepare

DEMO_DAG_ID = "idbt_example"
DEMO_CONN_ID = "idbt_dev"
DEMO_AUDIENCE = "idbt-demo"
DEMO_POOL = "idbt_duckdb"


def _say(message: str) -> None:
    print(f"[idbt demo] {message}", flush=True)


def summarize(outcome: DagRunOutcome) -> list[dict[str, Any]]:
    """One row per model from the `model_run` end events of the run's task logs (last try wins)."""
    rows: dict[str, dict[str, Any]] = {}
    for event in outcome.events():
        if event.get("kind") != "model_run" or event.get("phase") != "end":
            continue
        model = event.get("model", {}).get("unique_id", "?")
        previous = rows.get(model)
        if previous is None or event["try_number"] >= previous["try"]:
            rows[model] = {
                "model": model,
                "task_id": event["task_id"],
                "try": event["try_number"],
                "status": event.get("status"),
                "subject": event.get("identity", {}).get("subject"),
                "duration_s": event.get("duration_s"),
            }
    return sorted(rows.values(), key=lambda row: row["task_id"])


def print_summary(rows: list[dict[str, Any]]) -> None:
    header = ("model", "status", "identity subject", "try", "duration")
    table = [header] + [
        (r["model"], str(r["status"]), str(r["subject"]), str(r["try"]), f"{r['duration_s']:.1f}s") for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def run_demo(dags_folder: str, home: str) -> int:
    from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider

    started = time.monotonic()
    dags = Path(dags_folder).resolve()
    project = dags / "example_project"
    if not (project / "dbt_project.yml").exists():
        raise SystemExit(f"no example dbt project at {project}; run the demo from the repository root")
    demo_home = Path(home).resolve()
    shutil.rmtree(demo_home, ignore_errors=True)
    demo_home.mkdir(parents=True)
    secret = os.urandom(18).hex()
    client = DevClient(
        client_id="demo-runner",
        client_secret=secret,
        subject="svc-dbt-demo",
        groups=("analytics", "engineering"),
        audiences=(DEMO_AUDIENCE,),
    )
    with DevIdentityProvider(clients=[client], audiences=[DEMO_AUDIENCE], token_lifetime=3600).start() as idp:
        _say(f"dev identity provider at {idp.issuer}")
        conn = idp.connection(client)
        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_DUCKDB_PATH": str(demo_home / "idbt_example.duckdb"),
            f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}": json.dumps(conn),
        }
        os.environ.update(env)
        # What a deployment does at build time: the manifest, partial parse file and slim index. The seeds are
        # loaded by the DAG's own seed tasks.
        _say("idbt prepare: the manifest the DAG is built from (dbt parse) and its slim index")
        try:
            prepare(project, profiles_dir=project, out=sys.stdout)
        except PrepareFailed as exc:
            raise SystemExit(f"idbt prepare failed: {exc}") from exc
        airflow = LocalAirflow(home=demo_home / "airflow", dags_folder=dags, extra_env=env)
        _say(f"preparing Airflow (SQLite) under {airflow.home}")
        airflow.prepare()
        airflow.airflow("pools", "set", DEMO_POOL, "1", "DuckDB takes one writer at a time")
        airflow.start_api_server()
        try:
            _say(f"running DAG `{DEMO_DAG_ID}` through the executor with supervised task processes")
            outcome = airflow.run_dag(DEMO_DAG_ID)
        finally:
            airflow.stop()
    rows = summarize(outcome)
    print()
    print_summary(rows)
    print()
    _say(
        f"DAG run {outcome.run_id}: {outcome.state} in {time.monotonic() - started:.0f}s; "
        f"task logs under {airflow.home / 'logs'}"
    )
    return 0 if outcome.state == "success" and rows else 1
