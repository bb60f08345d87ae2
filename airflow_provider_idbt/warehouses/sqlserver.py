"""SQL Server and Azure SQL (dbt-sqlserver): the Entra ID access token as ``access_token``, its expiry beside it.

Its error rows and the worker check also serve Fabric and Synapse, which run the same engine and driver.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR, WarehouseLogin
from airflow_provider_idbt.warehouses.spec import (
    FailureRow,
    IdentityLabels,
    Namespace,
    ProfileFields,
    WarehouseSpec,
    failure_rows,
    missing_grant_rows,
)

# The adapters' own value for "the token is given, acquire nothing" (dbt-sqlserver and dbt-fabric).
ACCESS_TOKEN_AUTHENTICATION = "ActiveDirectoryAccessToken"
DEFAULT_DRIVER = "ODBC Driver 18 for SQL Server"
# Non-secret: when the token stops working, in epoch seconds (dbt-sqlserver's `access_token_expires_on`).
# No "TOKEN" in the name: the runner refuses plain environment names that look like a secret.
TOKEN_EXPIRES_ON_ENV = "IDBT_LOGIN_EXPIRES_ON"
TOKEN_EXPIRES_ON_REFERENCE = "{{ env_var('" + TOKEN_EXPIRES_ON_ENV + "') | int }}"
# pyodbc links against unixODBC's driver manager; Microsoft's msodbcsql18 package depends on it.
_ODBC_DRIVER_MANAGER = "libodbc.so.2"

DRIVER_MISSING = (
    "Microsoft ODBC Driver 18 for SQL Server is not installed on this worker: install msodbcsql18 "
    "(see docs/warehouses/sqlserver.md)"
)


def sql_engine_failures(adapter: str) -> tuple[FailureRow, ...]:
    """The SQL engine's documented errors, as the ODBC driver reports them (number in parentheses).

    18456 "login failed" (an expired or wrong-audience token says so too); AADSTS* is Entra's refusal;
    229/230/300 "permission was denied on", 262 "permission denied in database", 297 "does not have
    permission"; 916/4060 a principal with no user in the database (grant, not a token problem); 40615 the
    Azure SQL firewall, and a driver that cannot load: neither a token refresh nor a grant can help.
    """
    return failure_rows(
        adapter,
        # A worker without the driver: libodbc missing (pyodbc import), the driver not registered with
        # unixODBC, or mssql-python's bundled driver unable to load its system libraries.
        (
            "setup",
            r"libodbc\.so\.\d+: cannot open shared object|can't open lib '[^']*'|"
            r"data source name not found and no default driver|failed to load the driver",
            "install unixODBC and Microsoft's msodbcsql18 (dbt-fabric: the libltdl7, libkrb5-3 and "
            "libgssapi-krb5-2 packages) on the worker; see docs/warehouses/sqlserver.md",
        ),
        ("other", r"\(40615\)|client with ip address '[^']*' is not allowed to access the server"),
        ("other", r"\bHYT00\b|login timeout expired"),
        # Before the auth rows: 4060's text ends with "The login failed." although the token was accepted.
        (
            "permission",
            r"\((?:916|4060)\)|is not able to access the database|cannot open database \"[^\"]*\" requested by",
        ),
        ("auth", r"login failed|\(18456\)|\bAADSTS\d+|(access )?token (has |is )?expired"),
        (
            "permission",
            r"permission was denied|permission denied|does not have permission|\((?:229|230|262|297|300)\)",
        ),
    )


SQL_ENGINE_MISSING_GRANTS = missing_grant_rows(
    # 229 "The SELECT permission was denied on the object 'orders', ..."; 300 "... on object 'x', ..."
    r"(?:the )?\b((?!the\b)\w+(?: \w+){0,3}) permission was denied on (?:the )?object '([^']+)'",
    # 262 "CREATE TABLE permission denied in database 'dw'."
    (r"\b((?!the\b)\w+(?: \w+){0,3}) permission denied in database '([^']+)'", " in database "),
)
SQL_ENGINE_LABELS = IdentityLabels(
    recorded_in="Query Store (`sys.query_store_query_text`) and Extended Events' `sql_text`"
)


def missing_libraries(names: tuple[str, ...]) -> list[str]:
    """The shared libraries of ``names`` this worker cannot load (Linux only; elsewhere nothing is checked)."""
    if not sys.platform.startswith("linux"):
        return []
    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def require_odbc_driver_manager() -> None:
    """Fail before dbt starts when pyodbc cannot load here (no unixODBC, hence no msodbcsql18 either).

    The dbt process runs on this same worker and loads the same system library; without it dbt fails on
    its first connection with a bare ``libodbc.so.2`` import error, after parsing the project.
    """
    if missing_libraries((_ODBC_DRIVER_MANAGER,)):
        raise ConfigurationError(DRIVER_MISSING)


def token_and_expiry(token: FederatedToken) -> WarehouseLogin:
    """The token as the secret, its expiry (epoch seconds) as the non-secret ``IDBT_LOGIN_EXPIRES_ON``."""
    return WarehouseLogin(
        secret_env={TOKEN_ENV_VAR: token.reveal()},
        env={TOKEN_EXPIRES_ON_ENV: str(int(token.expires_at.timestamp()))},
    )


def token_and_expiry_login(token: FederatedToken, login_args: Mapping[str, Any]) -> WarehouseLogin:
    """SQL Server's login: the worker can load the ODBC driver manager, then the token and its expiry."""
    require_odbc_driver_manager()
    return token_and_expiry(token)


PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: sqlserver
      server: sql-dw.database.windows.net
      port: 1433
      database: dw
      schema: analytics
      driver: ODBC Driver 18 for SQL Server
      authentication: ActiveDirectoryAccessToken
      access_token: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"
      access_token_expires_on: "{{ env_var('IDBT_LOGIN_EXPIRES_ON') | int }}"
      encrypt: true
      trust_cert: false
      retries: 1
      login_timeout: 30
      threads: 1
"""

WAREHOUSE = WarehouseSpec(
    adapter="sqlserver",
    title="SQL Server / Azure SQL",
    profile=ProfileFields(
        required=("server", "database", "schema"),
        optional={
            "port": 1433,
            "driver": DEFAULT_DRIVER,
            "threads": 1,
            "encrypt": None,
            "trust_cert": None,
            "retries": None,
            "login_timeout": None,
            "query_timeout": None,
            "schema_authorization": None,
        },
        token_field="access_token",
        aliases={"host": "server", "TrustServerCertificate": "trust_cert"},
        # dbt-sqlserver's pyodbc backend hands the token to the driver as SQL_COPT_SS_ACCESS_TOKEN; its
        # mssql-python backend refuses this authentication, so `backend` is left at its pyodbc default.
        # The expiry is also fixed, so that a user-given one is refused and the documented snippet (which
        # spells the reference out) is accepted as a generated profile's fields.
        fixed={"authentication": ACCESS_TOKEN_AUTHENTICATION},
        templated={"access_token_expires_on": TOKEN_EXPIRES_ON_REFERENCE},
    ),
    profile_snippet=PROFILE_SNIPPET,
    failures=sql_engine_failures("sqlserver"),
    missing_grants=SQL_ENGINE_MISSING_GRANTS,
    namespace=Namespace("mssql", ("server", "port"), {"port": 1433}),
    labels=SQL_ENGINE_LABELS,
    login=token_and_expiry_login,
    extra="sqlserver",
)
