"""The README's demo as a new user runs it: `idbt demo --ui` runs the example DAG, prints the per-model summary,
then leaves Airflow's api-server up on the run with the sign-in printed; the run's grid and its Model runs view
answer for that user, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.dbt_projects import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IDBT = str(Path(sys.executable).with_name("idbt"))
_SAID = re.compile(r"^\[idbt demo\] (?P<text>.*)$")


@dataclass
class Demo:
    process: subprocess.Popen[str]
    said: list[str]
    summary: list[str]

    def line(self, prefix: str) -> str:
        return next(text for text in self.said if text.strip().startswith(prefix))

    def address(self, prefix: str) -> str:
        return self.line(prefix).rsplit(" ", 1)[-1]


def _read_until_ready(process: subprocess.Popen[str], timeout: float) -> tuple[list[str], list[str]]:
    said: list[str] = []
    summary: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"idbt demo --ui exited ({process.wait()}) before the UI was up:\n" + "\n".join(said))
        match = _SAID.match(line.rstrip("\n"))
        if match:
            said.append(match.group("text"))
            if match.group("text") == "press Ctrl-C to stop it":
                return said, summary
        elif line.strip():
            summary.append(line.rstrip("\n"))
    raise AssertionError("idbt demo --ui did not bring the UI up in time:\n" + "\n".join(said))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    home = tmp_path_factory.mktemp("demo") / ".demo"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "DBT_", "IDBT_"))}
    process = subprocess.Popen(
        [IDBT, "demo", "--ui", "--home", str(home)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        said, summary = _read_until_ready(process, timeout=480)
        yield Demo(process, said, summary)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _token(demo: Demo) -> str:
    user, password = re.match(r"\s*sign in as (\S+) / (\S+)$", demo.line("sign in as")).groups()  # type: ignore[union-attr]
    base = demo.address("Airflow's UI is up at").rstrip("/")
    request = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["access_token"])


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_demo_prints_its_summary_then_the_sign_in(demo: Demo) -> None:
    assert any("DAG run" in text and ": success in" in text for text in demo.said)
    header = next(line for line in demo.summary if line.startswith("model "))
    assert "identity subject" in header
    models = [line for line in demo.summary if line.startswith("model.idbt_example.")]
    assert len(models) >= 5 and all("success" in line and "svc-dbt-demo" in line for line in models)
    assert re.fullmatch(r"\s*sign in as admin / \S+", demo.line("sign in as"))


def test_the_runs_grid_and_model_runs_view_answer_for_the_signed_in_user(demo: Demo) -> None:
    token = _token(demo)
    status, _ = _get(demo.address("the run's grid and task logs:"), token)
    assert status == 200
    model_runs = demo.address("the Model runs view of the run:")
    assert _get(model_runs)[0] in (401, 403)  # nobody signed in: no rows
    status, page = _get(model_runs, token)
    assert status == 200, page[:2000]
    assert "model.idbt_example.customer_orders" in page and "svc-dbt-demo" in page


def test_ctrl_c_stops_the_demo_and_its_api_server(demo: Demo) -> None:
    base = demo.address("Airflow's UI is up at")
    os.killpg(demo.process.pid, signal.SIGINT)
    assert demo.process.wait(timeout=60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "api/v2/monitor/health", timeout=5)
