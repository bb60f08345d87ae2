"""Connection types that exchange the worker's identity refuse any stored key, by the field that holds it."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.google.config import GoogleFederationConfig

CONFIGS = [AwsWebIdentityConfig, GoogleFederationConfig]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(("login", "password", "field"), [("AKIAEXAMPLE", None, "login"), (None, "s3cr3t", "password")])
def test_login_or_password_is_refused(config: type, login: str | None, password: str | None, field: str) -> None:
    with pytest.raises(ConnectionFieldError) as caught:
        config.from_connection("c", login, password, {})
    assert caught.value.field == field and "remove it" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "key"), [(AwsWebIdentityConfig, "aws_secret_access_key"), (GoogleFederationConfig, "keyfile_dict")]
)
def test_long_lived_keys_in_extra_are_refused(config: type, key: str) -> None:
    with pytest.raises(ConnectionFieldError) as caught:
        config.from_connection("c", None, None, {key: "x"})
    assert caught.value.field == key and "long-lived" in str(caught.value)
