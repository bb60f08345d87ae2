"""docker-compose.yaml: valid for docker-compose (no engine needed), and every service runs the one entry point.

There is no Docker engine on these machines: `docker-compose config` parses, merges and validates the file without
one. The native run of the same entry point, with the same env file, is tests/integration/test_compose_entrypoint.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
ENV_FILE = REPO / "deploy" / "airflow.env"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
# Where deploy/Dockerfile puts deploy/ in the image.
IMAGE_ENTRYPOINT = "/opt/idbt/deploy/entrypoint.sh"
# Services that run someone else's image and command.
THIRD_PARTY = {"postgres", "redis"}
AIRFLOW_SERVICES = {
    "airflow-init": "init",
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker-1": "celery-worker",
    "airflow-worker-2": "celery-worker",
    "idbt-dev-idp": "dev-idp",
    "idbt-warm-worker": "warm-worker",
}


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines as docker-compose reads an env_file (no quotes, no expansion; `#` lines are comments)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        assert not value.startswith(("'", '"')), f"{path.name}:{number}: docker-compose keeps quotes as written"
        values[key] = value
    return values


def entrypoint_subcommands() -> list[str]:
    done = subprocess.run(["bash", str(ENTRYPOINT), "commands"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed: `apt-get install docker-compose` (Debian's; `config` needs no engine)"
        )
    return binary


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as docker-compose resolves it: anchors merged, env_file read into each service's environment."""
    done = subprocess.run(
        [_compose_binary(), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_docker_compose_config_accepts_the_file(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == THIRD_PARTY | set(AIRFLOW_SERVICES)


def test_every_airflow_service_runs_an_existing_subcommand_of_the_entry_point(resolved: dict[str, Any]) -> None:
    subcommands = entrypoint_subcommands()
    for name, expected in AIRFLOW_SERVICES.items():
        service = resolved["services"][name]
        assert service["entrypoint"] == [IMAGE_ENTRYPOINT], name
        command = service["command"]
        assert isinstance(command, list) and command, name
        assert command[0] in subcommands, f"{name}: `{command[0]}` is not a subcommand of deploy/entrypoint.sh"
        assert command[0] == expected, name


def test_every_airflow_service_gets_exactly_the_env_file(resolved: dict[str, Any]) -> None:
    """What the native run reads (read_env_file) is what docker-compose gives each service, plus the few keys
    the service sets itself."""
    file_env = read_env_file()
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for name in AIRFLOW_SERVICES:
        own = {k: str(v) for k, v in (raw[name].get("environment") or {}).items()}
        environment = {k: str(v) for k, v in resolved["services"][name]["environment"].items()}
        assert environment == file_env | own, name
        assert set(own) <= {"IDBT_WORKER_NAME"}, f"{name}: put shared settings in deploy/airflow.env"


def test_two_celery_workers_with_their_own_names(resolved: dict[str, Any]) -> None:
    names = {
        resolved["services"][w]["environment"]["IDBT_WORKER_NAME"] for w in ("airflow-worker-1", "airflow-worker-2")
    }
    assert names == {"airflow-worker-1", "airflow-worker-2"}
    assert resolved["services"]["airflow-worker-1"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_workers_and_the_warm_worker_share_its_directory_and_the_project(resolved: dict[str, Any]) -> None:
    env = read_env_file()
    assert env["AIRFLOW__IDBT__EXECUTION_MODE"] == "warm"

    def mounts(name: str) -> set[str]:
        found = set()
        for volume in resolved["services"][name]["volumes"]:
            target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
            found.add(target)
        return found

    for name in ("airflow-worker-1", "airflow-worker-2", "idbt-warm-worker"):
        targets = mounts(name)
        assert "/run/idbt" in targets and "/opt/airflow/dags" in targets, name
    for key in ("IDBT_WARM_DIR", "TMPDIR", "IDBT_DUCKDB_PATH"):
        assert env[key].startswith("/run/idbt/"), key
    assert env["IDBT_PROJECT_DIR"].startswith(env["AIRFLOW__CORE__DAGS_FOLDER"] + "/")


def test_the_image_installs_the_provider_with_the_constraints_and_uses_the_entry_point() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r'pip install [^\n]*-c constraints\.txt "\.\[[a-z,]*celery[a-z,]*\]"', text)
    assert "COPY deploy ./deploy" in text and "WORKDIR /opt/idbt" in text
    assert f'ENTRYPOINT ["{IMAGE_ENTRYPOINT}"]' in text
    assert ENTRYPOINT.stat().st_mode & 0o111, "deploy/entrypoint.sh must be executable (the image runs it directly)"


def test_the_entry_point_refuses_an_unknown_subcommand() -> None:
    done = subprocess.run(["bash", str(ENTRYPOINT), "webserver"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "unknown subcommand 'webserver'" in done.stderr
