"""`idbt audit --since ... [--until ...]`: every model run of a period (optionally one DAG, one identity) as CSV or
JSON, the same rows and bytes as the "Model runs" view's export for the same filter."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_idbt.ui.model_runs import ModelRun, RunFilter

FORMATS = ("csv", "json")


def add_arguments(audit: argparse.ArgumentParser) -> None:
    """The export's options on the `audit` sub-command (beside the run trail's --dag-id/--run-id/--json)."""
    export = audit.add_argument_group(
        "export of a period",
        "with --since: every try of every model task that started in the period, one row each (identity, token "
        "fingerprint and expiry, warehouse role, DAG run, task try, model, relations, status), read from the "
        "metadata database; the same rows as the Model runs view's export",
    )
    export.add_argument("--since", metavar="ISO", help="start of the period, included (2026-11-01 or a date-time)")
    export.add_argument("--until", metavar="ISO", help="end of the period, excluded (default: no end)")
    export.add_argument(
        "--identity", metavar="TEXT", help="only tries whose subject, principal, issuer or a group contains TEXT"
    )
    export.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or json")
    export.add_argument("--output", metavar="FILE", help="write the export to FILE instead of standard output")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """True for an export (``--since`` given); a mix of the two modes' options is a usage error."""
    export_only = [f"--{name}" for name in ("until", "identity", "output") if getattr(args, name) is not None]
    if args.since is None:
        if export_only or args.format != "csv":
            parser.error(f"{', '.join(export_only) or '--format'} needs --since (the period to export)")
        if args.dag_id is None or args.run_id is None:
            parser.error("give --dag-id and --run-id (one run's trail), or --since [--until] (a period's export)")
        return False
    if args.run_id is not None or args.json:
        parser.error("--run-id and --json print one run's trail; an export (--since) takes --format and --output")
    return True


def run_export(args: argparse.Namespace) -> int:
    """Write the period's rows; 0 on success (also with no rows), 2 when the filter or the database is wrong."""
    from airflow_provider_idbt.ui.model_runs import parse_filter, to_csv, to_json

    params = {"since": args.since, "until": args.until, "dag_id": args.dag_id, "identity": args.identity}
    try:
        flt = parse_filter(params)
    except ValueError as error:
        print(f"idbt audit: {error}", file=sys.stderr)
        return 2
    data = sys.stdout
    # Airflow may log to standard output while it starts: keep those lines out of the export.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            rows = _rows(flt)
        except _DatabaseError as error:
            print(f"idbt audit: {error}", file=sys.stderr)
            return 2
    text = to_csv(rows) if args.format == "csv" else to_json(rows)
    if args.output:
        with Path(args.output).open("w", encoding="utf-8", newline="") as out:
            out.write(text)
        print(f"idbt audit: {len(rows)} model run(s) written to {args.output}", file=sys.stderr)
    else:
        data.write(text)
        data.flush()
    if not rows:
        print("idbt audit: no model run matches (check the period, and --dag-id/--identity)", file=sys.stderr)
    return 0


class _DatabaseError(Exception):
    pass


def _rows(flt: RunFilter) -> list[ModelRun]:
    from sqlalchemy.exc import SQLAlchemyError

    from airflow_provider_idbt.ui.run_store import export_rows

    try:
        return export_rows(flt)
    except SQLAlchemyError as error:
        raise _DatabaseError(
            f"cannot read Airflow's metadata database ({type(error).__name__}: {error.args[0]}); run it where "
            "`airflow dags list-runs` works, with the same AIRFLOW_HOME and configuration"
        ) from None
