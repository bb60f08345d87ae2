"""Pre-flight: model meta requirements against identity groups and the group-to-role mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_provider_idbt.dbt.permissions import (
    ModelRequirements,
    RoleMapping,
    check_access,
    held_access,
)
from airflow_provider_idbt.errors import ConfigurationError, PermissionMismatch
from airflow_provider_idbt.identity.token import IdentityContext

MODEL = "model.idbt_pg.finance_summary"


def _identity(*groups: str) -> IdentityContext:
    return IdentityContext(
        "https://idp.test", "svc-runner", datetime(2030, 1, 1, tzinfo=UTC), "sha256:x", groups=groups
    )


def test_requirements_from_meta_accept_roles_groups_and_single_names() -> None:
    meta = {"idbt": {"required_roles": ["finance_admin", "finance_admin"], "required_group": "analytics"}}
    assert ModelRequirements.from_meta(meta, MODEL) == ModelRequirements(("finance_admin",), ("analytics",))
    assert not ModelRequirements.from_meta({"owner": "x"}, MODEL)


@pytest.mark.parametrize(
    "meta", [{"idbt": "finance"}, {"idbt": {"required_roles": [1]}}, {"idbt": {"required_roles": [""]}}]
)
def test_malformed_meta_is_a_configuration_error(meta: dict) -> None:
    with pytest.raises(ConfigurationError, match=MODEL):
        ModelRequirements.from_meta(meta, MODEL)


def test_mapping_parses_json_text_and_keeps_declared_order() -> None:
    mapping = RoleMapping.parse('{"analytics": ["transformer", "finance_admin"], "interns": "intern_role"}', "conn")
    assert mapping is not None
    assert mapping.roles_for(["interns", "analytics"]) == ("transformer", "finance_admin", "intern_role")
    assert RoleMapping.parse("", "conn") is None and RoleMapping.parse(None, "conn") is None


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"a": [3]}'])
def test_bad_mapping_names_its_source(value: str) -> None:
    with pytest.raises(ConfigurationError, match="connection `prod` extra"):
        RoleMapping.parse(value, "connection `prod` extra `role_mapping`")


def test_without_mapping_groups_count_as_roles() -> None:
    assert held_access(_identity("analytics"), None).roles == ("analytics",)
    mapping = RoleMapping.parse({"analytics": "transformer"}, "conf")
    assert held_access(_identity("analytics"), mapping).roles == ("transformer",)


def test_missing_role_raises_permission_mismatch_naming_everything() -> None:
    mapping = RoleMapping.parse({"auditors": ["transformer"]}, "connection `pg` extra `role_mapping`")
    with pytest.raises(PermissionMismatch) as caught:
        check_access(MODEL, ModelRequirements(roles=("finance_admin",)), _identity("auditors"), mapping)
    error = caught.value
    assert not error.retryable
    assert error.required == ("role:finance_admin",)
    assert error.held == ("group:auditors", "role:transformer")
    assert error.subject == "svc-runner" and error.model == MODEL
    assert "lacks role:finance_admin" in str(error) and "connection `pg`" in str(error)


def test_missing_group_raises() -> None:
    with pytest.raises(PermissionMismatch, match="lacks group:analytics"):
        check_access(MODEL, ModelRequirements(groups=("analytics",)), _identity("interns"), None)


def test_warehouse_role_prefers_the_models_required_role() -> None:
    mapping = RoleMapping.parse({"analytics": ["transformer", "finance_admin"]}, "conf")
    requirements = ModelRequirements(roles=("finance_admin",))
    access = check_access(MODEL, requirements, _identity("analytics"), mapping, need_warehouse_role=True)
    assert access.warehouse_role == "finance_admin"
    plain = check_access(MODEL, ModelRequirements(), _identity("analytics"), mapping, need_warehouse_role=True)
    assert plain.warehouse_role == "transformer"


def test_no_mapped_role_to_run_as_is_a_mismatch() -> None:
    mapping = RoleMapping.parse({"analytics": ["transformer"]}, "conf")
    with pytest.raises(PermissionMismatch, match="no deployment role"):
        check_access(MODEL, ModelRequirements(), _identity("interns"), mapping, need_warehouse_role=True)


@pytest.mark.parametrize("role", ["reader; drop table x", "read er", "r" * 64, "1role"])
def test_warehouse_role_must_be_a_plain_identifier(role: str) -> None:
    mapping = RoleMapping.parse({"analytics": [role]}, "conf")
    with pytest.raises(ConfigurationError, match="plain identifier"):
        check_access(MODEL, ModelRequirements(), _identity("analytics"), mapping, need_warehouse_role=True)
