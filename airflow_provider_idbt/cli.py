"""The `idbt` command: `doctor` (check a connection), `dev-idp` (a local OIDC issuer) and `demo` (the example)."""

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
    sub.add_parser("dev-idp", help="run the development OpenID Connect issuer (never for production)", add_help=False)
    demo = sub.add_parser("demo", help="run the example DAG end to end on DuckDB with the dev identity provider")
    demo.add_argument("--dags-folder", default="dags", help="folder with the example DAG (default: dags)")
    demo.add_argument("--home", default=".demo", help="where Airflow, the warehouse and logs go (default: .demo)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "dev-idp":
        from airflow_provider_idbt.devidp import main as dev_idp_main

        return dev_idp_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "doctor":
        from airflow_provider_idbt.doctor import run_doctor

        return run_doctor(args.conn_id, min_ttl=args.min_ttl)
    from airflow_provider_idbt.demo import run_demo

    return run_demo(dags_folder=args.dags_folder, home=args.home)


if __name__ == "__main__":
    sys.exit(main())
