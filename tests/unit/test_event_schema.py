"""The published `docs/events.schema.json` accepts what the events module builds and rejects what it must not."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from airflow_provider_idbt import events
from tests.fixtures.dbt_projects import REPO
from tests.unit.identity.test_token import make_token

KEYS = events.RunKeys(dag_id="d", run_id="manual__1", task_id="g.m", try_number=1)
MODEL = {
    "unique_id": "model.p.m",
    "namespace": "duckdb:///wh.duckdb",
    "inputs": ["wh.main.a"],
    "outputs": ["wh.main.m"],
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _every_kind() -> list[dict[str, Any]]:
    token = make_token()
    identity = token.identity
    return [
        events.build_event(
            "token_issued",
            KEYS,
            identity=identity,
            model=MODEL,
            audience=["wh"],
            expires_at="2026-01-01T00:00:00+00:00",
        ),
        events.build_event("model_run", KEYS, identity=identity, model=MODEL, phase="start"),
        events.build_event(
            "model_run", KEYS, identity=identity, model=MODEL, phase="start", warehouse_role="finance_admin"
        ),
        events.build_event(
            "model_run", KEYS, identity=identity, model=MODEL, phase="end", status="success", duration_s=1.5
        ),
        events.build_event(
            "permission_mismatch",
            KEYS,
            identity=identity,
            model=MODEL,
            required=["payroll"],
            held=["analytics"],
            warehouse_message="permission denied for table salaries",
        ),
        events.build_event(
            "permission_mismatch",
            KEYS,
            model=MODEL,
            stage="job",
            connection="idbt_prod",
            required=["allowed_dags:team_a_*"],
            held=["dag:intruder"],
            error_class="JobNotAllowed",
            error_message="connection `idbt_prod` is bound to other jobs",
        ),
        events.build_event(
            "auth_failure",
            KEYS,
            model=MODEL,
            connection="idbt_dev",
            error_class="CredentialRejected",
            error_message="invalid_client",
        ),
        events.build_event(
            "task_lifecycle",
            KEYS,
            model={"unique_id": "m"},
            phase="failed",
            source="listener",
            error_class="X",
            error_message="y",
        ),
    ]


def test_every_kind_the_module_builds_is_valid(validator: jsonschema.Draft202012Validator) -> None:
    for event in _every_kind():
        validator.validate(json.loads(events.format_event(event)))


@pytest.mark.parametrize(
    "change",
    [
        {"schema": "idbt.event/2"},
        {"kind": "something_else"},
        {"try_number": "1"},
        {"token": "eyJ..."},
        {"phase": "end"},  # a model_run end without status/duration
        {"warehouse_role": ""},
        {"warehouse_role": ["a", "b"]},
    ],
)
def test_invalid_events_are_rejected(validator: jsonschema.Draft202012Validator, change: dict[str, Any]) -> None:
    event = {**_every_kind()[1], **change}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(event)


def test_identity_cannot_carry_extra_claims(validator: jsonschema.Draft202012Validator) -> None:
    event = _every_kind()[1]
    event["identity"] = {**event["identity"], "email": "someone@example.test"}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(event)


def test_a_job_refusal_carries_no_identity_and_names_its_connection(
    validator: jsonschema.Draft202012Validator,
) -> None:
    refusal = next(e for e in _every_kind() if e.get("stage") == "job")
    validator.validate(refusal)
    for bad in (
        {**refusal, "identity": _every_kind()[1]["identity"]},
        {k: v for k, v in refusal.items() if k != "connection"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)
    # Every other stage still needs the identity that was refused.
    preflight = {k: v for k, v in _every_kind()[4].items() if k != "identity"}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**preflight, "stage": "preflight"})
