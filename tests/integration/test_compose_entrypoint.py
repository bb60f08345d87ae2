"""The entry point of docker-compose.yaml, run natively with its env file: what `docker compose up` would run.

`deploy/entrypoint.sh` `dev-idp`, `init`, `api-server` and `warm-worker` run here as the compose services would,
with deploy/airflow.env; only the values that name a compose hostname or a container path are pointed at this machine
(a private PostgreSQL cluster for the metadata and the warehouse, a free port for the dev IdP, a temp directory).
The connection `init` created then gets a real token from the IdP `dev-idp` started, through `idbt doctor`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import free_port
from tests.fixtures.postgres import ADMIN, PrivateCluster
from tests.unit.test_docker_compose import ENTRYPOINT, REPO, read_env_file

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
# What a value in deploy/airflow.env may not name once overridden: compose hostnames and container paths.
COMPOSE_HOSTS = ("@postgres:", "//redis:", "//airflow-api-server:", "idbt-dev-idp")
CONTAINER_PATHS = ("/opt/airflow", "/run/idbt")


def native_env(root: Path, cluster: PrivateCluster, idp_port: int, api_port: int) -> dict[str, str]:
    file_env = read_env_file()
    # The private cluster's superuser, as the compose file's `airflow` is its postgres image's (POSTGRES_USER).
    admin_at = f"{ADMIN}:{cluster.admin_password}@127.0.0.1:{cluster.port}"
    metadata = f"postgresql+psycopg2://{admin_at}/airflow"
    overrides = {
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{admin_at}/airflow",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW_API_HOST": "127.0.0.1",
        "AIRFLOW_API_PORT": str(api_port),
        "IDBT_PROJECT_DIR": str(root / "dags" / "example_project"),
        "IDBT_DUCKDB_PATH": str(root / "run" / "idbt_example.duckdb"),
        "IDBT_WARM_DIR": str(root / "run" / "warm"),
        "TMPDIR": str(root / "run" / "tmp"),
        "IDBT_DEV_IDP_HOST": "127.0.0.1",
        "IDBT_DEV_IDP_PORT": str(idp_port),
        "IDBT_WAREHOUSE_ADMIN_URL": f"postgresql://{admin_at}/postgres",
    }
    assert set(overrides) <= set(file_env), "an override names a key deploy/airflow.env does not have"
    merged = file_env | overrides
    left = {k for k, v in merged.items() if v.startswith(CONTAINER_PATHS) or any(h in v for h in COMPOSE_HOSTS)}
    assert not left, f"values still naming compose hosts or container paths: {sorted(left)}"
    env = dict(os.environ)
    env.update(merged)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    started = PrivateCluster.start()
    try:
        started.execute("create database airflow")
        yield started
    finally:
        started.stop()


def _terminate(process: subprocess.Popen[bytes], group: bool = False, grace: float = 30) -> None:
    if process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


@pytest.fixture(scope="module")
def deployment(cluster: PrivateCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """dev-idp started, init run, then api-server started, all through the entry point, as the compose services
    run them (the api-server, like the compose service, only after init succeeded)."""
    root = tmp_path_factory.mktemp("compose-native")
    shutil.copytree(REPO / "dags", root / "dags", ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
    env = native_env(root, cluster, free_port(), free_port())
    logs = {name: open(root / f"{name}.log", "wb") for name in ("dev-idp", "api-server")}
    idp = subprocess.Popen(
        ["bash", str(ENTRYPOINT), "dev-idp"], env=env, stdout=logs["dev-idp"], stderr=subprocess.STDOUT, cwd=root
    )
    api: subprocess.Popen[bytes] | None = None
    try:
        init = subprocess.run(
            ["bash", str(ENTRYPOINT), "init"], env=env, capture_output=True, text=True, timeout=300, cwd=root
        )
        if init.returncode == 0:
            # Its own process group: the api-server starts workers of its own.
            api = subprocess.Popen(
                ["bash", str(ENTRYPOINT), "api-server"],
                env=env,
                stdout=logs["api-server"],
                stderr=subprocess.STDOUT,
                cwd=root,
                start_new_session=True,
            )
        yield {"root": root, "env": env, "idp": idp, "idp_log": root / "dev-idp.log", "init": init, "api": api}
    finally:
        if api is not None:
            _terminate(api, group=True, grace=5)  # its graceful shutdown is not what this file tests
        _terminate(idp)
        for log in logs.values():
            log.close()


def test_init_runs_every_step(deployment: dict[str, object]) -> None:
    init = deployment["init"]
    assert isinstance(init, subprocess.CompletedProcess)
    assert init.returncode == 0, f"init failed:\n{init.stdout[-4000:]}\n{init.stderr[-4000:]}"
    for step in (
        "airflow db migrate",
        "connections",
        "pool idbt_duckdb",
        "warehouse roles",
        "idbt prepare",
        "init done",
    ):
        assert f"[idbt entrypoint] {step}" in init.stderr, step
    assert "compose-dev-secret" not in init.stdout + init.stderr


def test_init_creates_the_connection_and_the_pool_in_the_metadata_database(
    deployment: dict[str, object], cluster: PrivateCluster
) -> None:
    rows = cluster.execute(
        "select conn_type, host, login, is_encrypted from connection where conn_id = 'idbt_dev'", dbname="airflow"
    )
    port = dict(deployment["env"])["IDBT_DEV_IDP_PORT"]  # type: ignore[call-overload]
    assert rows == [("idbt_oidc", f"http://127.0.0.1:{port}", "idbt-compose", True)]
    # The secret is stored encrypted with the env file's Fernet key, never as written.
    stored = cluster.execute("select password from connection where conn_id = 'idbt_dev'", dbname="airflow")
    assert "compose-dev-secret" not in stored[0][0]
    assert cluster.execute("select slots from slot_pool where pool = 'idbt_duckdb'", dbname="airflow") == [(1,)]


def test_init_creates_the_warehouse_roles_and_grants(deployment: dict[str, object], cluster: PrivateCluster) -> None:
    checks = cluster.execute(
        """select
             has_schema_privilege('transformer', 'analytics', 'CREATE'),
             has_table_privilege('transformer', 'raw.orders', 'SELECT'),
             has_schema_privilege('reporting', 'analytics', 'CREATE'),
             has_table_privilege('reporting', 'raw.orders', 'SELECT'),
             pg_has_role('idbt-compose', 'transformer', 'MEMBER'),
             pg_has_role('idbt-compose', 'transformer', 'USAGE'),
             (select rolcanlogin from pg_roles where rolname = 'transformer'),
             (select rolcanlogin from pg_roles where rolname = 'idbt-compose')""",
        dbname="warehouse",
    )
    # transformer builds, reporting only reads; the identity reaches transformer only through SET ROLE.
    assert checks == [(True, True, False, False, True, False, False, True)]


def test_the_warehouse_sql_runs_again_cleanly(deployment: dict[str, object]) -> None:
    """A second `docker compose up` runs init again: the warehouse step must not fail on what exists."""
    env = dict(deployment["env"])  # type: ignore[call-overload]
    again = subprocess.run(
        [
            "psql",
            env["IDBT_WAREHOUSE_ADMIN_URL"],
            "--quiet",
            "--no-psqlrc",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "warehouse_db=warehouse",
            "-v",
            "identity=idbt-compose",
            "-f",
            str(REPO / "deploy" / "warehouse.sql"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr


def test_init_builds_the_manifest_the_dag_and_the_warm_worker_read(deployment: dict[str, object]) -> None:
    project = Path(dict(deployment["env"])["IDBT_PROJECT_DIR"])  # type: ignore[call-overload]
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    assert "model.idbt_example.customer_orders" in manifest["nodes"]
    assert (project / "target" / "partial_parse.msgpack").exists()


def wait_for_discovery(deployment: dict[str, object]) -> dict[str, object]:
    env = dict(deployment["env"])  # type: ignore[call-overload]
    issuer = f"http://127.0.0.1:{env['IDBT_DEV_IDP_PORT']}"
    idp = deployment["idp"]
    assert isinstance(idp, subprocess.Popen)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=3) as response:
                doc: dict[str, object] = json.load(response)
            return doc
        except OSError:
            assert idp.poll() is None, Path(str(deployment["idp_log"])).read_text()
            assert time.monotonic() < deadline, "the dev IdP did not answer in 30 s"
            time.sleep(0.3)


def test_the_dev_idp_answers_its_discovery_document_at_the_connections_issuer(deployment: dict[str, object]) -> None:
    env = dict(deployment["env"])  # type: ignore[call-overload]
    issuer = f"http://127.0.0.1:{env['IDBT_DEV_IDP_PORT']}"
    doc = wait_for_discovery(deployment)
    assert doc["issuer"] == issuer
    assert doc["token_endpoint"] == f"{issuer}/token"


def test_the_connection_init_created_gets_a_token_from_the_idp_dev_idp_started(deployment: dict[str, object]) -> None:
    env = dict(deployment["env"])  # type: ignore[call-overload]
    wait_for_discovery(deployment)
    # `idbt doctor` reads the connection `init` stored in the metadata database (it marks itself a "server"
    # process, as `airflow connections get` does: Airflow 3.3 reads the database only in one outside a task).
    env.pop("_AIRFLOW_PROCESS_CONTEXT", None)
    doctor = subprocess.run(
        [str(VENV_BIN / "idbt"), "doctor", "idbt_dev", "--min-ttl", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=deployment["root"],  # type: ignore[arg-type]
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "connection `idbt_dev` (idbt_oidc): OK" in doctor.stdout
    assert f"issuer       http://127.0.0.1:{env['IDBT_DEV_IDP_PORT']}" in doctor.stdout
    assert "subject      idbt-compose" in doctor.stdout
    assert "analytics, engineering" in doctor.stdout
    assert "compose-dev-secret" not in doctor.stdout + doctor.stderr


def test_the_dev_idp_stops_on_sigterm(deployment: dict[str, object]) -> None:
    idp = deployment["idp"]
    assert isinstance(idp, subprocess.Popen)
    assert idp.poll() is None
    idp.send_signal(signal.SIGTERM)  # what `docker compose stop` sends; `exec` made idbt the entry point's process
    assert idp.wait(timeout=20) == 0


def test_the_api_server_starts_on_the_migrated_database(deployment: dict[str, object]) -> None:
    env = dict(deployment["env"])  # type: ignore[call-overload]
    api = deployment["api"]
    assert isinstance(api, subprocess.Popen), "init failed, so the api-server was not started"
    log = Path(str(deployment["root"])) / "api-server.log"
    url = f"http://127.0.0.1:{env['AIRFLOW_API_PORT']}/api/v2/monitor/health"
    deadline = time.monotonic() + 120
    while True:
        assert api.poll() is None, log.read_text()[-4000:]
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                health = json.load(response)
            break
        except OSError:
            assert time.monotonic() < deadline, "the api-server did not answer in 120 s"
            time.sleep(0.5)
    assert health["metadatabase"]["status"] == "healthy"


def test_the_warm_worker_service_serves_the_manifest_init_built(deployment: dict[str, object]) -> None:
    env = dict(deployment["env"])  # type: ignore[call-overload]
    root = Path(str(deployment["root"]))
    log_path = root / "warm-worker.log"
    with open(log_path, "wb") as log:
        warm = subprocess.Popen(
            ["bash", str(ENTRYPOINT), "warm-worker"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root
        )
        try:
            deadline = time.monotonic() + 90
            while "worker pid" not in log_path.read_text():
                assert warm.poll() is None, log_path.read_text()[-4000:]
                assert time.monotonic() < deadline, "the warm worker did not start in 90 s"
                time.sleep(0.3)
            text = log_path.read_text()
            manifest = Path(env["IDBT_PROJECT_DIR"]) / "target" / "manifest.json"
            assert f"serving {env['IDBT_PROJECT_DIR']} ({manifest}) at {env['IDBT_WARM_DIR']}/" in text
            # The worker binds its socket once dbt is imported and the project loaded: where the tasks look.
            socket_path = Path(text.split(") at ", 1)[1].split()[0])
            while not socket_path.is_socket():
                assert warm.poll() is None, log_path.read_text()[-4000:]
                assert time.monotonic() < deadline, f"no socket at {socket_path} in 90 s"
                time.sleep(0.3)
        finally:
            _terminate(warm)
    assert warm.returncode == 0, log_path.read_text()[-4000:]
