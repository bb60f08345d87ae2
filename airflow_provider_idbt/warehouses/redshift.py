"""Amazon Redshift (dbt-redshift): a temporary database password per task, from the task's AWS credentials.

dbt-redshift's ``method: iam`` takes an access key pair but no session token, so the temporary credentials of
an ``idbt_aws`` identity cannot go there. Instead the login step calls ``redshift:GetClusterCredentials``
(provisioned) or ``redshift-serverless:GetCredentials`` with them, and the profile logs in with
``method: database``: the returned user as ``IDBT_WAREHOUSE_USER``, the password as the token variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR, WarehouseLogin
from airflow_provider_idbt.warehouses.spec import (
    IdentityLabels,
    Namespace,
    ProfileFields,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

USER_ENV = "IDBT_WAREHOUSE_USER"
USER_REFERENCE = "{{ env_var('" + USER_ENV + "') }}"

PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: redshift
      method: database
      host: analytics.abc123xyz789.eu-west-1.redshift.amazonaws.com
      port: 5439
      # the database user and temporary password idbt got from GetClusterCredentials for this task
      user: "{{ env_var('IDBT_WAREHOUSE_USER') }}"
      password: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"
      dbname: dw
      schema: analytics
      sslmode: verify-full
      threads: 1
"""

LOGIN_FIELDS: Mapping[str, Any] = {
    "cluster_identifier": None,
    "workgroup_name": None,
    "db_user": None,
    "db_name": None,
    "db_groups": None,
    "auto_create": False,
    "region": None,
    "duration_seconds": 900,
    "endpoint_url": None,
}


def _groups(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence):
        return tuple(str(part) for part in value)
    raise ConfigurationError("redshift login: `db_groups` must be a list of group names or a comma-separated string")


def redshift_login(token: FederatedToken, args: Mapping[str, Any]) -> WarehouseLogin:
    """The task's database user and temporary password, from its ``idbt_aws`` credentials."""
    from airflow_provider_idbt.identity.aws.database import (
        redshift_cluster_login,
        redshift_serverless_login,
        session_credentials,
    )

    unknown = sorted(set(args) - set(LOGIN_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"redshift login: unknown field `{unknown[0]}`; accepted: {', '.join(sorted(LOGIN_FIELDS))}"
        )
    cluster, workgroup = args.get("cluster_identifier"), args.get("workgroup_name")
    if bool(cluster) == bool(workgroup):
        raise ConfigurationError(
            "redshift login: give `cluster_identifier` (provisioned cluster) or `workgroup_name` (serverless), "
            "exactly one"
        )
    common: dict[str, Any] = {
        "db_name": args.get("db_name") or None,
        "duration_seconds": int(args.get("duration_seconds") or LOGIN_FIELDS["duration_seconds"]),
        "region": args.get("region") or None,
        "endpoint_url": args.get("endpoint_url") or None,
    }
    if cluster:
        if not args.get("db_user"):
            raise ConfigurationError("redshift login: `db_user` is required with `cluster_identifier`")
        login = redshift_cluster_login(
            session_credentials(token, "Amazon Redshift"),
            cluster_identifier=str(cluster),
            db_user=str(args["db_user"]),
            db_groups=_groups(args.get("db_groups")),
            auto_create=bool(args.get("auto_create")),
            **common,
        )
    else:
        if args.get("db_user") or args.get("db_groups") or args.get("auto_create"):
            raise ConfigurationError(
                "redshift login: `db_user`, `db_groups` and `auto_create` are for provisioned clusters; Redshift "
                "Serverless derives the user from the IAM identity (remove them)"
            )
        creds = session_credentials(token, "Amazon Redshift Serverless")
        login = redshift_serverless_login(creds, workgroup_name=str(workgroup), **common)
    return WarehouseLogin(
        {TOKEN_ENV_VAR: login.password.reveal()}, env={USER_ENV: login.user}, expires_at=login.expires_at
    )


WAREHOUSE = WarehouseSpec(
    adapter="redshift",
    title="Amazon Redshift",
    profile=ProfileFields(
        required=("host", "dbname", "schema"),
        optional={
            "port": 5439,
            "threads": 1,
            "sslmode": None,
            "connect_timeout": None,
            "retries": None,
            "ra3_node": None,
            "autocommit": None,
            "query_group": None,
            "tcp_keepalive": None,
        },
        token_field="password",
        aliases={"database": "dbname"},
        # `user` is also fixed so that a user-given `user` is refused with a clear message, and so that the
        # documented snippet (which spells the reference out) is accepted as a generated profile's fields.
        fixed={"method": "database"},
        templated={"user": USER_REFERENCE},
        login=LOGIN_FIELDS,
    ),
    profile_snippet=PROFILE_SNIPPET,
    login=redshift_login,
    # Redshift's own texts (it speaks PostgreSQL's protocol, SQLSTATE included). Auth rows first: a refused
    # login can mention a permission, and an expired temporary password is refused as a failed password.
    failures=failure_rows(
        "redshift",
        ("auth", r"password authentication failed|IAM Authentication failed|\b28P01\b|\b28000\b"),
        ("auth", r"has an expired password|(temporary )?credentials? (have|has) expired|ExpiredToken"),
        ("auth", r"FATAL:\s+user \"[^\"]*\" does not exist"),
        ("permission", r"permission denied|\b42501\b|must be owner of|not authorized to"),
    ),
    missing_grants=missing_grant_rows((r"permission denied for (\w+) (\"[^\"]+\"|\S+)", " ")),
    namespace=Namespace("redshift", ("host", "port"), {"port": 5439}),
    labels=IdentityLabels(recorded_in="`STL_QUERY` / `SYS_QUERY_HISTORY` query text"),
    extra="redshift",
)
