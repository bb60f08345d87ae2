"""SQL Server and Fabric with dbt's own adapters: profiles load into their credentials classes; without the
driver a real `dbt run` fails fast with a classified, token-free error, and the provider says so before dbt.

No SQL engine runs here: connections go to 127.0.0.1, and this machine has neither unixODBC nor the system
libraries mssql-python's bundled driver needs, so what is exercised is the profile and the driver-missing path.
"""

from __future__ import annotations

import ctypes
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from airflow_provider_idbt.dbt.failures import failure_for, failure_kind
from airflow_provider_idbt.dbt.json_log import read_dbt_log
from airflow_provider_idbt.dbt.profiles import render_profile, write_profiles_dir
from airflow_provider_idbt.dbt.runner import DbtInvocation, SubprocessRunner
from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint
from airflow_provider_idbt.warehouses import warehouse
from airflow_provider_idbt.warehouses.fabric import BUNDLED_DRIVER_LIBRARIES, fabric_login
from airflow_provider_idbt.warehouses.login import TOKEN_ENV_VAR
from airflow_provider_idbt.warehouses.sqlserver import DRIVER_MISSING, TOKEN_EXPIRES_ON_ENV, token_and_expiry_login
from tests.fixtures.dbt_venv import dbt_venv_python, load_profile, write_profile

pytestmark = pytest.mark.integration

SECRET = "eyJ0eXAiOiJKV1QifQ.entra-sql-engine-payload.signature-7f3a"
EXPIRES = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=45)
ENV = {TOKEN_ENV_VAR: SECRET, TOKEN_EXPIRES_ON_ENV: str(int(EXPIRES.timestamp()))}
CLASSES = {
    "sqlserver": "dbt.adapters.sqlserver.sqlserver_credentials.SQLServerCredentials",
    "fabric": "dbt.adapters.fabric.fabric_credentials.FabricCredentials",
}
FIELDS = {
    "sqlserver": {"server": "127.0.0.1", "port": 1, "database": "dw", "schema": "analytics", "login_timeout": 5},
    "fabric": {"host": "127.0.0.1", "database": "dw", "schema": "analytics", "login_timeout": 5},
}


def _loadable(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


HAS_UNIXODBC = _loadable("libodbc.so.2")
HAS_BUNDLED_DRIVER_LIBS = all(_loadable(name) for name in BUNDLED_DRIVER_LIBRARIES)


def _token() -> FederatedToken:
    identity = IdentityContext("https://login.microsoftonline.com/t/v2.0", "svc-dbt", EXPIRES, fingerprint(SECRET))
    return FederatedToken(SECRET, expires_at=EXPIRES, identity=identity)


def _assert_token_credentials(adapter: str, loaded: dict[str, object]) -> None:
    assert loaded["type"] == adapter and loaded["credentials_class"] == CLASSES[adapter]
    fields = loaded["fields"]
    assert isinstance(fields, dict)
    assert fields["access_token"] == SECRET
    assert fields["authentication"] == "ActiveDirectoryAccessToken"
    if adapter == "sqlserver":
        assert fields["access_token_expires_on"] == int(EXPIRES.timestamp())
        assert type(fields["access_token_expires_on"]) is int
        assert fields["driver"] == "ODBC Driver 18 for SQL Server" and fields["backend"] == "pyodbc"
    else:
        assert "access_token_expires_on" not in fields


@pytest.mark.parametrize("adapter", ["sqlserver", "fabric"])
def test_generated_profile_loads_with_the_adapters_credentials(adapter: str, tmp_path: Path) -> None:
    profiles = write_profiles_dir(render_profile(adapter, FIELDS[adapter], "idbt"), tmp_path / "profiles")
    assert SECRET not in (profiles / "profiles.yml").read_text()
    _assert_token_credentials(adapter, load_profile(profiles, "idbt", ENV))


@pytest.mark.parametrize("adapter", ["sqlserver", "fabric"])
def test_snippet_loads_with_the_adapters_credentials(adapter: str, tmp_path: Path) -> None:
    spec = warehouse(adapter)
    assert spec is not None and spec.profile_snippet is not None
    profiles = write_profile(tmp_path / "own", yaml.safe_load(spec.profile_snippet))
    loaded = load_profile(profiles, "analytics", ENV)
    _assert_token_credentials(adapter, loaded)


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        'name: sql_engine\nversion: "1.0"\nprofile: idbt\n'
        "query-comment: \"{{ env_var('IDBT_QUERY_COMMENT', '') }}\"\n"
    )
    (project / "models" / "orders.sql").write_text("select 1 as id\n")
    return project


def _run_without_driver(adapter: str, tmp_path: Path) -> tuple[list[str], object, float, str]:
    """A real `dbt run` of one model with the generated profile (adapter defaults: retries 3)."""
    fields = {k: v for k, v in FIELDS[adapter].items() if k != "login_timeout"}
    profiles = write_profiles_dir(render_profile(adapter, fields, "idbt"), tmp_path / "profiles")
    invocation = DbtInvocation(
        project_dir=str(_project(tmp_path)),
        profiles_dir=str(profiles),
        select="orders",
        target_path=str(tmp_path / "target"),
        log_path=str(tmp_path / "logs"),
        python=str(dbt_venv_python()),
        env={TOKEN_EXPIRES_ON_ENV: ENV[TOKEN_EXPIRES_ON_ENV]},
    )
    lines: list[str] = []
    started = time.monotonic()
    result = SubprocessRunner().run(invocation, {TOKEN_ENV_VAR: SECRET}, lines.append)
    elapsed = time.monotonic() - started
    log = read_dbt_log(invocation.log_path, "model.sql_engine.orders")
    kind = failure_kind(result, log, adapter)
    assert result.status in ("error", "invocation_error"), lines[-20:]
    assert kind == "setup", (kind, lines[-20:])  # neither a token refresh nor a grant can help
    assert not log.model_statements  # nothing of the model reached a warehouse
    # What the task fails with when the login step is bypassed: permanent (no retries), and it says what to install.
    error = failure_for("model.sql_engine.orders", _token().identity, result, log, adapter)
    assert isinstance(error, ConfigurationError) and not error.retryable
    assert "cannot run the" in str(error) and "msodbcsql18" in str(error) and SECRET not in str(error)
    everything = "\n".join([*lines, result.message, *log.messages])
    assert SECRET not in everything
    assert SECRET not in "\n".join(p.read_text() for p in (tmp_path / "logs").rglob("*") if p.is_file())
    return lines, result, elapsed, everything


@pytest.mark.skipif(HAS_UNIXODBC, reason="unixODBC is installed here: not a worker without the driver")
def test_sqlserver_without_the_driver_fails_fast_and_says_so(tmp_path: Path) -> None:
    _lines, _result, elapsed, everything = _run_without_driver("sqlserver", tmp_path)
    assert "libodbc.so.2: cannot open shared object file" in everything
    assert elapsed < 90  # one connection attempt: dbt start-up and parse, never a hang
    # The provider's own login step, on this same worker, stops before dbt with the actionable message.
    with pytest.raises(ConfigurationError) as raised:
        token_and_expiry_login(_token(), {})
    assert str(raised.value) == DRIVER_MISSING and not raised.value.retryable
    assert SECRET not in str(raised.value)


@pytest.mark.skipif(HAS_BUNDLED_DRIVER_LIBS, reason="mssql-python's bundled driver loads here")
def test_fabric_without_the_driver_libraries_fails_fast_and_says_so(tmp_path: Path) -> None:
    _lines, _result, elapsed, everything = _run_without_driver("fabric", tmp_path)
    assert "Failed to load the driver" in everything
    assert elapsed < 90
    with pytest.raises(ConfigurationError) as raised:
        fabric_login(_token(), {})
    assert "docs/warehouses/fabric.md" in str(raised.value) and not raised.value.retryable
    assert SECRET not in str(raised.value)
