"""identity_hook_for: the one table from connection type to hook, and the provider registry agreeing with it."""

from __future__ import annotations

import json

import pytest

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.get_provider_info import get_provider_info
from airflow_provider_idbt.hooks import HOOKS_BY_CONN_TYPE, identity_hook_for
from airflow_provider_idbt.hooks.aws import AwsWebIdentityHook
from airflow_provider_idbt.hooks.oidc import OidcTokenHook


def test_hook_by_conn_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_A", json.dumps({"conn_type": "idbt_aws", "extra": {}}))
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_O", json.dumps({"conn_type": "idbt_oidc", "host": "https://i.test"}))
    assert isinstance(identity_hook_for("idbt_a"), AwsWebIdentityHook)
    hook = identity_hook_for("idbt_o")
    assert isinstance(hook, OidcTokenHook) and hook.identity_conn_id == "idbt_o"


def test_other_conn_type_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_IDBT_PG", json.dumps({"conn_type": "postgres", "host": "db"}))
    with pytest.raises(ConfigurationError, match=r"type `postgres`.*idbt_oidc, idbt_aws"):
        identity_hook_for("idbt_pg")
    with pytest.raises(ConfigurationError, match="AIRFLOW_CONN_IDBT_NONE"):
        identity_hook_for("idbt_none")


def test_registry_names_the_same_hooks() -> None:
    registered = {c["connection-type"]: c["hook-class-name"] for c in get_provider_info()["connection-types"]}
    assert registered == HOOKS_BY_CONN_TYPE
    behaviour = AwsWebIdentityHook.get_ui_field_behaviour()
    assert "password" in behaviour["hidden_fields"]
