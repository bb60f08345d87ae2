"""The `idbt` command: `doctor` (check a connection), `audit` (a run's identity trail, or a period's export),
`dev-idp`, `demo`, `warm-worker` (the warm dbt worker as a service) and `prepare` (manifest, partial parse, slim
index at build time)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="idbt", description="Identity-aware dbt for Apache Airflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser(
        "doctor", help="fetch a token through an identity connection and print who it identifies (never the token)"
    )
    doctor.add_argument("conn_id", help="the id of an idbt_oidc or idbt_aws connection")
    doctor.add_argument(
        "--min-ttl", type=int, default=0, metavar="SECONDS", help="fail unless a token lasts at least this long"
    )
    audit = sub.add_parser(
        "audit",
        help="who ran each model: one DAG run's identity trail, or every model run of a period as CSV/JSON",
        description="With --dag-id and --run-id: one run's identity trail, from the task logs' events (the "
        "idbt_events XCom of a try that left no log). With --since: every model run of the period as CSV or JSON.",
    )
    audit.add_argument("--dag-id", help="the DAG (a run's trail), or only this DAG's runs (an export)")
    audit.add_argument("--run-id", help="the DAG run whose trail to print")
    audit.add_argument("--json", action="store_true", help="print the trail as JSON")
    from airflow_provider_idbt.commands import audit_export

    audit_export.add_arguments(audit)
    sub.add_parser("dev-idp", help="run the development OpenID Connect issuer (never for production)", add_help=False)
    demo = sub.add_parser("demo", help="run the example DAG end to end on DuckDB with the dev identity provider")
    demo.add_argument("--dags-folder", default="dags", help="folder with the example DAG (default: dags)")
    demo.add_argument("--home", default=".demo", help="where Airflow, the warehouse and logs go (default: .demo)")
    demo.add_argument(
        "--ui",
        action="store_true",
        help="after the run, keep Airflow's api-server up on it (the grid, the task logs, the Model runs view) "
        "and print the sign-in; Ctrl-C stops it",
    )
    warm = sub.add_parser(
        "warm-worker", help="keep one project's warm dbt worker running (for a container or a systemd unit)"
    )
    from airflow_provider_idbt.commands.warm_worker import add_arguments

    add_arguments(warm)
    from airflow_provider_idbt.commands import prepare as prepare_command

    prepare_command.add_arguments(
        sub.add_parser("prepare", help=prepare_command.HELP, description=prepare_command.HELP)
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "dev-idp":
        from airflow_provider_idbt.commands.dev_idp import main as dev_idp_main

        return dev_idp_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "doctor":
        from airflow_provider_idbt.commands.doctor import run_doctor

        return run_doctor(args.conn_id, min_ttl=args.min_ttl)
    if args.command == "audit":
        if audit_export.check_arguments(audit, args):
            return audit_export.run_export(args)
        from airflow_provider_idbt.commands.audit_logs import run_audit

        return run_audit(args.dag_id, args.run_id, as_json=args.json)
    if args.command == "prepare":
        return prepare_command.main(args)
    if args.command == "warm-worker":
        from airflow_provider_idbt.commands.warm_worker import main as warm_worker_main

        return warm_worker_main(args)
    from airflow_provider_idbt.commands.demo import run_demo

    return run_demo(dags_folder=args.dags_folder, home=args.home, ui=args.ui)


if __name__ == "__main__":
    sys.exit(main())
