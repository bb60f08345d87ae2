"""PostgreSQL (dbt-postgres): the token is the password; roles with SET ROLE; SQLSTATE-based error rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR, WarehouseLogin, token_login
from airflow_provider_idbt.warehouses.spec import (
    IdentityLabels,
    Namespace,
    ProfileFields,
    RoleSetting,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: postgres
      host: db.internal
      port: 5432
      user: svc_dbt
      password: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"
      dbname: dw
      schema: analytics
      sslmode: verify-full
      # with warehouse_role_from_identity=True; empty means no SET ROLE
      role: "{{ env_var('IDBT_WAREHOUSE_ROLE', '') }}"
      threads: 1
"""

# What the login step reads. `host`, `port` and `user` are profile fields too: an RDS token is signed for them.
LOGIN_FIELDS: Mapping[str, Any] = {"iam_auth": None, "region": None, "host": None, "port": 5432, "user": None}
IAM_AUTH = ("rds",)


def postgres_login(token: FederatedToken, args: Mapping[str, Any]) -> WarehouseLogin:
    """The token itself as the password; with ``iam_auth="rds"`` an RDS IAM auth token signed for this login."""
    iam_auth = args.get("iam_auth")
    if iam_auth in (None, "", False):
        return token_login(token)
    if iam_auth not in IAM_AUTH:
        raise ConfigurationError(f"postgres login: `iam_auth` must be one of {', '.join(IAM_AUTH)} (or unset)")
    from airflow_provider_idbt.identity.aws.database import rds_auth_token, session_credentials

    missing = [name for name in ("host", "user", "region") if not args.get(name)]
    if missing:
        raise ConfigurationError(
            f"postgres login: `{missing[0]}` is required with iam_auth=rds (the token is signed for host, port, "
            "user and region)"
        )
    creds = session_credentials(token, "PostgreSQL on RDS/Aurora with IAM authentication")
    login = rds_auth_token(
        creds, host=str(args["host"]), port=int(args.get("port") or 5432), user=str(args["user"]), region=args["region"]
    )
    return WarehouseLogin({TOKEN_ENV_VAR: login.password.reveal()}, expires_at=login.expires_at)


WAREHOUSE = WarehouseSpec(
    adapter="postgres",
    extra="postgres",
    title="PostgreSQL",
    profile=ProfileFields(
        required=("host", "user", "dbname", "schema"),
        optional={
            "port": 5432,
            "threads": 1,
            "sslmode": None,
            "sslrootcert": None,
            "connect_timeout": None,
            "keepalives_idle": None,
            "search_path": None,
            "role": None,
            "retries": None,
        },
        token_field="password",
        aliases={"database": "dbname", "username": "user", "login": "user"},
        login=LOGIN_FIELDS,
    ),
    login=postgres_login,
    profile_snippet=PROFILE_SNIPPET,
    # SQLSTATE class 28 (invalid authorization), 42501 insufficient_privilege. Auth rows come first:
    # "permission denied" can appear inside a login failure.
    failures=failure_rows(
        "postgres",
        ("auth", r"password authentication failed|\b28P01\b|\b28000\b"),
        ("auth", r"pam authentication failed|no pg_hba\.conf entry|has an expired password"),
        ("auth", r"FATAL:\s+role \"[^\"]*\" does not exist"),
        ("auth", r"(token|jwt).{0,40}(expired|invalid)"),
        (
            "permission",
            r"permission denied|insufficient[_ ]privilege|\b42501\b|must be owner of|must be member of role",
        ),
    ),
    missing_grants=missing_grant_rows((r"permission denied for (\w+) (\"[^\"]+\"|\S+)", " ")),
    namespace=Namespace("postgres", ("host", "port"), {"port": 5432}),
    labels=IdentityLabels(recorded_in="the server log (`log_statement`, pgAudit) and `pg_stat_activity.query`"),
    # dbt-postgres runs `set role <role>` on every connection it opens.
    role=RoleSetting(profile_field="role", effect="dbt-postgres runs `set role <role>` on every connection"),
)
