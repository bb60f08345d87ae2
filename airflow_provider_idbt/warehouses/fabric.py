"""Microsoft Fabric (dbt-fabric): the Entra ID access token as ``access_token``; the SQL engine's error rows.

dbt-fabric 1.11 connects with mssql-python, whose wheels carry Microsoft's ODBC Driver 18; on Linux that
driver still needs a few system libraries, checked here before dbt starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.warehouses.login import WarehouseLogin, token_login
from airflow_provider_idbt.warehouses.spec import IdentityLabels, ProfileFields, WarehouseSpec
from airflow_provider_idbt.warehouses.sqlserver import (
    ACCESS_TOKEN_AUTHENTICATION,
    SQL_ENGINE_MISSING_GRANTS,
    missing_libraries,
    sql_engine_failures,
)

# What the driver bundled with mssql-python links against (libltdl7, libkrb5-3, libgssapi-krb5-2 on Debian).
BUNDLED_DRIVER_LIBRARIES = ("libltdl.so.7", "libkrb5.so.3", "libgssapi_krb5.so.2")
_DEBIAN_PACKAGES = {"libltdl.so.7": "libltdl7", "libkrb5.so.3": "libkrb5-3", "libgssapi_krb5.so.2": "libgssapi-krb5-2"}


def require_bundled_driver_libraries() -> None:
    """Fail before dbt starts when mssql-python's bundled ODBC driver cannot load on this worker.

    Without them dbt-fabric fails on its first connection with "DDBC Error: Failed to load the driver".
    """
    missing = missing_libraries(BUNDLED_DRIVER_LIBRARIES)
    if missing:
        packages = ", ".join(_DEBIAN_PACKAGES[name] for name in missing)
        raise ConfigurationError(
            f"the Microsoft ODBC Driver 18 for SQL Server that dbt-fabric uses (bundled with mssql-python) cannot "
            f"load on this worker: {', '.join(missing)} missing; install {packages} "
            "(see docs/warehouses/fabric.md)"
        )


def fabric_login(token: FederatedToken, login_args: Mapping[str, Any]) -> WarehouseLogin:
    """The token itself is the secret; dbt-fabric has no expiry field."""
    require_bundled_driver_libraries()
    return token_login(token)


PROFILE_SNIPPET = """\
analytics:                      # the `profile:` of dbt_project.yml
  target: prod
  outputs:
    prod:
      type: fabric
      host: abc123xyz.datawarehouse.fabric.microsoft.com
      database: dw
      schema: analytics
      authentication: ActiveDirectoryAccessToken
      access_token: "{{ env_var('DBT_ENV_SECRET_IDBT_TOKEN') }}"
      encrypt: true
      trust_cert: false
      retries: 1
      login_timeout: 30
      threads: 1
"""

WAREHOUSE = WarehouseSpec(
    adapter="fabric",
    title="Microsoft Fabric",
    profile=ProfileFields(
        # `host` is required: without it dbt-fabric looks the endpoint up through the Fabric REST API, with
        # this same token, whose audience (the SQL engine's) that API does not accept.
        required=("host", "database", "schema"),
        optional={
            "threads": 1,
            "encrypt": None,
            "trust_cert": None,
            "retries": None,
            "login_timeout": None,
            "query_timeout": None,
            "lock_timeout": None,
            "schema_authorization": None,
        },
        token_field="access_token",
        aliases={"server": "host", "TrustServerCertificate": "trust_cert"},
        fixed={"authentication": ACCESS_TOKEN_AUTHENTICATION},
    ),
    profile_snippet=PROFILE_SNIPPET,
    failures=sql_engine_failures("fabric"),
    missing_grants=SQL_ENGINE_MISSING_GRANTS,
    labels=IdentityLabels(
        recorded_in="Fabric's query insights (`queryinsights.exec_requests_history.command`) and `sys.dm_exec_requests`"
    ),
    login=fabric_login,
    extra="fabric",
)
