"""Test-wide set-up: an egress guard so no test can reach a real cloud, and the shared server fixtures."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

# Any proxy-aware client (requests, urllib, httpx, botocore, google-auth) is sent to a closed port for every
# non-loopback address, so a test that forgets to point at a local server fails instead of calling out.
_DEAD_PROXY = "http://127.0.0.1:9"
_GUARDED = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
_PROXY_VARS = (*_GUARDED, "NO_PROXY", "no_proxy")
# What the machine had before the guard: only the tests that install from the package registry use it. Kept in
# the environment too, so the xdist workers (which inherit the guarded environment) recover the original.
_SAVED = "IDBT_TESTS_REGISTRY_PROXY_ENV"
if _SAVED not in os.environ:
    os.environ[_SAVED] = json.dumps({var: os.environ.get(var) for var in _PROXY_VARS})
REGISTRY_PROXY_ENV: dict[str, str | None] = json.loads(os.environ[_SAVED])
for _var in _GUARDED:
    os.environ[_var] = _DEAD_PROXY
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"


def registry_env() -> dict[str, str]:
    """This process's environment with the machine's own proxy settings: for installs from the package registry."""
    env = {k: v for k, v in os.environ.items() if k not in REGISTRY_PROXY_ENV and k != _SAVED}
    env.update({k: v for k, v in REGISTRY_PROXY_ENV.items() if v is not None})
    return env


# Bytecode for every Python process the tests start (Airflow's task processes, dbt, the servers): where
# PYTHONDONTWRITEBYTECODE is set, each of them compiled Airflow, dbt and the providers again, seconds apiece. The
# cache lives outside the repository and its virtualenvs; it is checked against the sources as usual.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), f"idbt-tests-pycache-{os.getuid()}"))

pytest_plugins: list[str] = [
    "tests.fixtures.identity_servers",
    "tests.fixtures.dbt_projects",
    "tests.fixtures.test_ca",
    "tests.fixtures.oidc_provider",
    "tests.fixtures.aws_sts",
    "tests.fixtures.postgres",
    "tests.fixtures.pg_warehouse",
    "tests.fixtures.google_fixtures",
]


@pytest.fixture(autouse=True)
def _no_dev_idp_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests opt in to dev-IdP tokens explicitly, as production would have to."""
    monkeypatch.delenv("IDBT_ALLOW_DEV_IDP", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _migrated_airflow_db_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every LocalAirflow of the run copies one freshly migrated SQLite database instead of migrating its own
    (shared by the xdist workers of one run: the template is written atomically)."""
    from airflow_provider_idbt.commands.local_airflow import DB_CACHE_ENV

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    os.environ[DB_CACHE_ENV] = str(root / "airflow-db-cache")
