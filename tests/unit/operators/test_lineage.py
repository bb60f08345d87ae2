"""IdbtLineageMixin: the operator's OpenLineage methods with OpenLineage installed, and nothing of it without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import jsonschema
import pytest

from airflow_provider_idbt import events
from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator
from tests.fixtures.dbt_projects import REPO, DbtProject
from tests.unit.identity.test_token import SECRET, make_token


def _operator(project: DbtProject, **kwargs: object) -> DbtIdentityOperator:
    return DbtIdentityOperator(
        task_id="order_totals",
        model="order_totals",
        project_dir=project.project_dir,
        manifest_path=project.manifest_path,
        identity_conn_id="idbt_dev",
        **({"profiles_dir": project.profiles_dir} | kwargs),  # type: ignore[arg-type]
    )


def test_complete_facets_carry_datasets_and_the_logged_identity(
    example_project: DbtProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    from openlineage.client.serde import Serde

    monkeypatch.setenv("IDBT_DUCKDB_PATH", "/warehouse/wh.duckdb")
    operator = _operator(example_project)
    ti = SimpleNamespace(dag_id="lineage_unit", run_id="r", task_id="order_totals", try_number=1, map_index=-1)
    token = make_token()
    keys = events.RunKeys.from_task_instance(ti)
    events.emit(
        operator.log, events.build_event("token_issued", keys, identity=token.identity, model={"unique_id": "m"})
    )

    lineage = operator.get_openlineage_facets_on_complete(ti)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("duckdb:///warehouse/wh.duckdb", "idbt_example.main.order_totals")
    ]
    assert sorted(d.name for d in lineage.inputs) == ["idbt_example.main.stg_orders", "idbt_example.main.stg_payments"]
    facet = Serde.to_dict(lineage.run_facets["idbt_identity"])
    schema = json.loads((REPO / "docs" / "idbt_identity_facet.schema.json").read_text())
    jsonschema.validate({"idbt_identity": facet}, schema)
    assert facet["subject"] == "svc-dbt" and facet["fingerprint"] == token.fingerprint
    assert SECRET not in json.dumps(facet)

    start = operator.get_openlineage_facets_on_start()
    assert start.run_facets == {} and len(start.inputs) == 2
    failed = operator.get_openlineage_facets_on_failure(SimpleNamespace(**{**vars(ti), "try_number": 2}))
    assert failed.run_facets == {} and failed.outputs, "a try that got no token has datasets but no identity"


def test_generated_profile_names_its_namespace(example_project: DbtProject) -> None:
    operator = _operator(
        example_project,
        profiles_dir=None,
        profile_args={"type": "postgres", "host": "pg", "user": "u", "dbname": "d", "schema": "s"},
    )
    assert operator.idbt_dataset_namespace() == "postgres://pg:5432"


def test_nothing_of_openlineage_is_imported_when_it_is_absent(example_project: DbtProject) -> None:
    """With OpenLineage made absent (imports blocked, distributions hidden), the provider imports, builds its
    events and runs its listener, and no OpenLineage module is loaded."""
    script = textwrap.dedent(
        """
        import importlib.abc, json, sys
        from types import SimpleNamespace

        BLOCKED = ("openlineage", "airflow.providers.openlineage")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.startswith(BLOCKED):
                    raise ImportError(f"{name} is blocked for this test")
                return None

        sys.meta_path.insert(0, Block())
        # Hide the installed distributions too, so Airflow's provider discovery sees OpenLineage as absent.
        import importlib.metadata, importlib_metadata
        for md in (importlib.metadata, importlib_metadata):
            def visible(original=md.distributions, **kwargs):
                return (d for d in original(**kwargs) if "openlineage" not in (d.metadata["Name"] or "").lower())
            md.distributions = visible
        import airflow_provider_idbt
        from airflow_provider_idbt import DbtIdentityOperator, events
        from airflow_provider_idbt.listeners import identity_listener
        from airflow_provider_idbt.plugins.idbt_plugin import IdbtPlugin

        project, manifest = sys.argv[1], sys.argv[2]
        op = DbtIdentityOperator(task_id="t", model="stg_orders", project_dir=project, manifest_path=manifest,
                                 identity_conn_id="idbt_dev", profiles_dir=project)
        ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=1, map_index=-1, task=op)
        identity_listener.on_task_instance_running(None, ti)
        (event,) = events.recorded(events.RunKeys.from_task_instance(ti))
        loaded = sorted(m for m in sys.modules if m.startswith(BLOCKED))
        print(json.dumps({"loaded": loaded, "listeners": len(IdbtPlugin.listeners), "event": event}))
        """
    )
    env = {**os.environ, **example_project.env}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(example_project.project_dir), str(example_project.manifest_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [] and report["listeners"] == 1
    event = report["event"]
    assert event["kind"] == "task_lifecycle" and event["phase"] == "running"
    assert event["model"]["namespace"] == f"duckdb://{example_project.duckdb_path}"
    assert event["model"]["outputs"] == ["idbt_example.main.stg_orders"]
