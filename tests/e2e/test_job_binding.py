"""End to end: identity connections bound to jobs (DAG ids, tags, bundles) refuse other DAGs before a token is
minted, and one DAG file runs as the dev or the prod identity, into that environment's warehouse, by a Variable."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_idbt.commands.local_airflow import DagRunOutcome, LocalAirflow
from airflow_provider_idbt.devidp.provider import DevClient, DevIdentityProvider
from tests.fixtures.dbt_projects import EXAMPLE_PROJECT, REPO, copy_project, run_dbt

pytestmark = pytest.mark.e2e

AUDIENCE = "idbt-e2e-binding"
TEAM_A = DevClient("team-a-runner", "team-a-" + os.urandom(12).hex(), subject="svc-team-a", audiences=(AUDIENCE,))
DEV = DevClient("env-dev-runner", "env-dev-" + os.urandom(12).hex(), subject="svc-env-dev", audiences=(AUDIENCE,))
PROD = DevClient("env-prod-runner", "env-prod-" + os.urandom(12).hex(), subject="svc-env-prod", audiences=(AUDIENCE,))
# Three targets in one profile: the binding DAGs' default, and the two environments' warehouses.
PROFILES = """\
idbt_example:
  target: binding
  outputs:
    binding:
      type: duckdb
      path: "{{ env_var('IDBT_DUCKDB_PATH') }}"
      threads: 1
    dev:
      type: duckdb
      path: "{{ env_var('IDBT_DUCKDB_DEV_PATH') }}"
      threads: 1
    prod:
      type: duckdb
      path: "{{ env_var('IDBT_DUCKDB_PROD_PATH') }}"
      threads: 1
"""


class CountingIdentityProvider(DevIdentityProvider):
    """The dev IdP, counting every token request by client id as it arrives (before it is granted or refused)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.token_requests: Counter[str] = Counter()

    def authenticate(self, client_id: str, secret: str) -> DevClient | None:
        self.token_requests[client_id] += 1
        return super().authenticate(client_id, secret)


@dataclass
class BindingRuns:
    home: Path
    warehouses: dict[str, Path]
    allowed: DagRunOutcome
    intruder: DagRunOutcome
    environments: dict[str, DagRunOutcome]
    landed: dict[str, dict[str, bool]]
    requests_during_intruder: int
    requests_total: Counter[str]
    secrets: list[str]


@pytest.fixture(scope="module")
def binding_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindingRuns]:
    home = tmp_path_factory.mktemp("job-binding")
    dags = home / "dags"
    dags.mkdir()
    project = copy_project(EXAMPLE_PROJECT, dags / "example_project").project_dir
    (project / "profiles.yml").write_text(PROFILES)
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "idbt_job_binding.py", dags)
    warehouses = {name: home / f"{name}.duckdb" for name in ("binding", "dev", "prod")}
    with CountingIdentityProvider([TEAM_A, DEV, PROD], audiences=[AUDIENCE], token_lifetime=3600) as idp:

        def conn(client: DevClient, **binding: object) -> str:
            connection = idp.connection(client)
            connection["extra"] |= binding
            return json.dumps(connection)

        env = {
            "IDBT_ALLOW_DEV_IDP": "1",
            "IDBT_EXAMPLE_PROJECT_DIR": str(project),
            "IDBT_DUCKDB_PATH": str(warehouses["binding"]),
            "IDBT_DUCKDB_DEV_PATH": str(warehouses["dev"]),
            "IDBT_DUCKDB_PROD_PATH": str(warehouses["prod"]),
            # As a platform team sets them: a JSON list, a comma-separated string (the UI form), bundle globs.
            "AIRFLOW_CONN_IDBT_TEAM_A": conn(TEAM_A, allowed_dags=["team_a_*"]),
            "AIRFLOW_CONN_IDBT_FINANCE": conn(TEAM_A, allowed_tags="finance, payroll"),
            "AIRFLOW_CONN_IDBT_PLATFORM_BUNDLE": conn(TEAM_A, allowed_bundles=["dags-*"]),
            "AIRFLOW_CONN_IDBT_TEAM_B_BUNDLE": conn(TEAM_A, allowed_bundles="team-b-*"),
            "AIRFLOW_CONN_IDBT_DEV": conn(DEV),
            "AIRFLOW_CONN_IDBT_PROD": conn(PROD),
        }
        for target in warehouses:
            run_dbt(project, "seed", "--target", target, env=env)
        # Last, so the deployed manifest is the default target's (each seed above rewrote target/manifest.json).
        run_dbt(project, "parse", env=env)
        with LocalAirflow(home=home / "airflow", dags_folder=dags, extra_env=env) as airflow:
            airflow.airflow("pools", "set", "idbt_duckdb", "1", "one DuckDB writer")
            allowed = airflow.run_dag("team_a_daily")
            before = sum(idp.token_requests.values())
            intruder = airflow.run_dag("intruder")
            during = sum(idp.token_requests.values()) - before
            environments = {}
            landed: dict[str, dict[str, bool]] = {}
            for name in ("dev", "prod"):
                # The deployment's configuration: the Variable as an environment variable, the DAG file unchanged.
                airflow.extra_env = {**env, "AIRFLOW_VAR_IDBT_ENVIRONMENT": name}
                environments[name] = airflow.run_dag("idbt_environments")
                landed[name] = {where: "stg_customers" in _tables(path) for where, path in warehouses.items()}
        issued = list(idp.issued_tokens)
        requests = Counter(idp.token_requests)
    yield BindingRuns(
        home=home,
        warehouses=warehouses,
        allowed=allowed,
        intruder=intruder,
        environments=environments,
        landed=landed,
        requests_during_intruder=during,
        requests_total=requests,
        secrets=[*issued, TEAM_A.client_secret, DEV.client_secret, PROD.client_secret],
    )


def _events(outcome: DagRunOutcome, kind: str, task_id: str | None = None) -> list[dict]:
    return [e for e in outcome.events() if e["kind"] == kind and task_id in (None, e["task_id"])]


def _tables(path: Path) -> set[str]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}


def test_tasks_of_the_bound_dag_get_their_token_and_run(binding_runs: BindingRuns) -> None:
    outcome = binding_runs.allowed
    assert outcome.state == "success", outcome.output[-3000:]
    for task_id in ("by_dag_id", "by_tag", "by_bundle"):
        (issued,) = _events(outcome, "token_issued", task_id)
        assert issued["identity"]["subject"] == "svc-team-a"
        end = next(e for e in _events(outcome, "model_run", task_id) if e["phase"] == "end")
        assert end["status"] == "success"
    assert {"stg_customers", "stg_orders", "stg_payments"} <= _tables(binding_runs.warehouses["binding"])


def test_every_intruder_task_fails_on_try_1_despite_retries(binding_runs: BindingRuns) -> None:
    outcome = binding_runs.intruder
    assert outcome.state == "failed"
    tries = sorted(outcome.task_logs())
    assert tries == [("borrow_finance", 1), ("borrow_other_bundle", 1), ("borrow_team_a", 1)], tries


@pytest.mark.parametrize(
    ("task_id", "connection", "because"),
    [
        ("borrow_team_a", "idbt_team_a", "the DAG id matches none of the patterns in its `allowed_dags` (team_a_*)"),
        ("borrow_finance", "idbt_finance", "the DAG carries none of the tags in its `allowed_tags` (finance, payroll)"),
        (
            "borrow_other_bundle",
            "idbt_team_b_bundle",
            "the DAG's bundle matches none of the patterns in its `allowed_bundles` (team-b-*)",
        ),
    ],
)
def test_the_refusal_is_logged_with_the_clear_message_and_a_permission_mismatch_event(
    binding_runs: BindingRuns, task_id: str, connection: str, because: str
) -> None:
    outcome = binding_runs.intruder
    log = outcome.task_logs()[(task_id, 1)].read_text()
    assert f"connection `{connection}` is bound to other jobs" in log
    assert "DAG `intruder` (tags: marketing; bundle: dags-folder) was refused before any token was minted" in log
    assert because in log
    assert "Ask the platform team to add this DAG" in log
    (event,) = _events(outcome, "permission_mismatch", task_id)
    assert event["stage"] == "job" and event["connection"] == connection
    assert event["error_class"] == "JobNotAllowed" and "identity" not in event
    assert not _events(outcome, "token_issued", task_id)
    assert not _events(outcome, "model_run", task_id)


def test_the_identity_provider_got_no_token_request_from_the_intruder(binding_runs: BindingRuns) -> None:
    assert binding_runs.requests_during_intruder == 0
    # The other runs did reach it, so the count is a real one: 3 allowed tasks, one task per environment.
    assert binding_runs.requests_total == Counter({TEAM_A.client_id: 3, DEV.client_id: 1, PROD.client_id: 1})


def test_one_dag_file_runs_as_each_environments_identity_into_its_warehouse(binding_runs: BindingRuns) -> None:
    for name, subject in (("dev", "svc-env-dev"), ("prod", "svc-env-prod")):
        outcome = binding_runs.environments[name]
        assert outcome.state == "success", outcome.output[-3000:]
        (issued,) = _events(outcome, "token_issued", "customers")
        assert issued["identity"]["subject"] == subject
        log = outcome.task_logs()[("customers", 1)].read_text()
        assert subject in log
        assert f"target='{name}'" in log  # dbt's own line: the rendered target
    assert binding_runs.environments["dev"].run_id != binding_runs.environments["prod"].run_id
    # After the dev run the model is in the dev warehouse only; the prod run then put it into prod's.
    assert binding_runs.landed["dev"]["dev"] and not binding_runs.landed["dev"]["prod"]
    assert binding_runs.landed["prod"]["prod"]


def test_no_token_or_client_secret_anywhere(binding_runs: BindingRuns) -> None:
    assert len(binding_runs.secrets) == 5 + 3, "the scan needs the real issued tokens"
    needles = [secret.encode() for secret in binding_runs.secrets]
    for path in (binding_runs.home / "airflow").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"a secret leaked into {path.relative_to(binding_runs.home)}"
    outputs = [binding_runs.allowed, binding_runs.intruder, *binding_runs.environments.values()]
    for outcome in outputs:
        for secret in binding_runs.secrets:
            assert secret not in outcome.output
