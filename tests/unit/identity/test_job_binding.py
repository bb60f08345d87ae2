"""JobBinding: parsing the allowed_* extras of an identity connection and refusing the jobs they do not name."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError, JobNotAllowed, PermissionMismatch
from airflow_provider_idbt.identity.job_binding import JobBinding


def binding(**extra: Any) -> JobBinding:
    return JobBinding.from_extra("idbt_prod", extra)


def test_unset_extras_let_every_job_use_the_connection() -> None:
    for extra in ({}, {"allowed_dags": None, "allowed_tags": "", "allowed_bundles": "  "}):
        rule = JobBinding.from_extra("idbt_prod", extra)
        assert not rule.restricts
        rule.check("anything", (), None)


@pytest.mark.parametrize(
    "value",
    [
        ["team_a_*", "shared_daily"],
        "team_a_*, shared_daily",
        '["team_a_*", "shared_daily"]',
        ("team_a_*", "shared_daily"),
    ],
)
def test_allowed_dags_read_from_a_list_a_comma_string_or_json_text(value: Any) -> None:
    assert binding(allowed_dags=value).allowed_dags == ("team_a_*", "shared_daily")


def test_a_dag_matching_a_glob_is_allowed_and_another_refused_with_a_clear_message() -> None:
    rule = binding(allowed_dags=["team_a_*"])
    rule.check("team_a_daily", ["finance"], "dags-folder")
    with pytest.raises(JobNotAllowed) as caught:
        rule.check("intruder", ["marketing", "adhoc"], "dags-folder")
    error = caught.value
    message = str(error)
    assert "connection `idbt_prod`" in message
    assert "DAG `intruder` (tags: adhoc, marketing; bundle: dags-folder)" in message
    assert "`allowed_dags` (team_a_*)" in message
    assert "before any token was minted" in message
    assert "Ask the platform team to add this DAG" in message and "identity connection meant for this DAG" in message
    assert isinstance(error, PermissionMismatch) and not error.retryable
    assert error.conn_id == "idbt_prod" and error.dag_id == "intruder"
    assert error.required == ("allowed_dags:team_a_*",) and error.held == ("dag:intruder",)


def test_globs_are_case_sensitive_like_dag_ids() -> None:
    with pytest.raises(JobNotAllowed):
        binding(allowed_dags="team_a_*").check("TEAM_A_daily")


def test_allowed_tags_need_at_least_one_matching_tag() -> None:
    rule = binding(allowed_tags="finance, payroll")
    rule.check("any_dag", ["marketing", "payroll"], None)
    with pytest.raises(JobNotAllowed, match=r"carries none of the tags in its `allowed_tags` \(finance, payroll\)"):
        rule.check("any_dag", ["marketing"], None)
    with pytest.raises(JobNotAllowed, match=r"tags: none"):
        rule.check("any_dag", [], None)


def test_allowed_bundles_match_the_bundle_name_and_refuse_an_unknown_bundle() -> None:
    rule = binding(allowed_bundles=["platform-*"])
    rule.check("any_dag", [], "platform-prod")
    with pytest.raises(
        JobNotAllowed, match=r"bundle: dags-folder.*bundle matches none.*`allowed_bundles` \(platform-\*\)"
    ):
        rule.check("any_dag", [], "dags-folder")
    with pytest.raises(JobNotAllowed, match="bundle is unknown"):
        rule.check("any_dag", [], None)


def test_every_set_extra_must_hold() -> None:
    rule = binding(allowed_dags=["team_a_*"], allowed_tags=["prod"], allowed_bundles=["team-a"])
    rule.check("team_a_daily", ["prod"], "team-a")
    with pytest.raises(JobNotAllowed, match="allowed_tags"):
        rule.check("team_a_daily", ["dev"], "team-a")
    with pytest.raises(JobNotAllowed, match="allowed_bundles"):
        rule.check("team_a_daily", ["prod"], "team-b")


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ({"allowed_dags": 7}, "allowed_dags", "is a int, not a list of DAG ids"),
        ({"allowed_tags": {"a": 1}}, "allowed_tags", "is a dict"),
        ({"allowed_dags": []}, "allowed_dags", "is an empty list"),
        ({"allowed_dags": ["a", ""]}, "allowed_dags", "has an empty entry"),
        ({"allowed_bundles": "a,,b"}, "allowed_bundles", "has an empty entry"),
        ({"allowed_bundles": "a,"}, "allowed_bundles", "has an empty entry"),
        ({"allowed_dags": ["a", 3]}, "allowed_dags", "holds 3, which is not text"),
        ({"allowed_dags": '["a", '}, "allowed_dags", "is not valid JSON"),
    ],
)
def test_bad_values_are_configuration_errors_naming_the_connection_and_the_extra(
    extra: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ConnectionFieldError) as caught:
        JobBinding.from_extra("idbt_prod", extra)
    error = caught.value
    assert isinstance(error, ConfigurationError) and not error.retryable
    assert error.conn_id == "idbt_prod" and error.field == field
    assert str(error).startswith(f"connection `idbt_prod`: field `{field}` {problem}")
