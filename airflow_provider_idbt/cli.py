"""The `idbt` command: `dev-idp` (a local OIDC issuer for development) and `demo` (the example, end to end)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="idbt", description="Identity-aware dbt for Apache Airflow.")
    sub = parser.add_subparsers(dest="command", required=True)
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
    from airflow_provider_idbt.demo import run_demo

    return run_demo(dags_folder=args.dags_folder, home=args.home)


if __name__ == "__main__":
    sys.exit(main())
