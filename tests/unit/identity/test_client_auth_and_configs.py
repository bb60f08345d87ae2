"""Client authentication (identity/oidc/client_auth.py) and the token-exchange/AWS connection validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.discovery import ProviderMetadata
from airflow_provider_idbt.identity.oidc.client_auth import (
    ASSERTION_TYPE,
    ClientSecretAuth,
    PrivateKeyJwtAuth,
)
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.secret import Secret

META = ProviderMetadata("https://idp.test", "https://idp.test/token", "https://idp.test/jwks", ())
ROLE = "arn:aws:iam::123456789012:role/dbt"


def pem() -> tuple[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return text, key.public_key()


def test_private_key_jwt_assertion_claims() -> None:
    private, public = pem()
    auth = PrivateKeyJwtAuth("c", "client-1", Secret(private), key_id="kid-1")
    form, basic = auth.credentials(META)
    assert basic is None and form["client_assertion_type"] == ASSERTION_TYPE
    claims = jwt.decode(form["client_assertion"], public, algorithms=["RS256"], audience=META.token_endpoint)
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]
    assert jwt.get_unverified_header(form["client_assertion"])["kid"] == "kid-1"
    assert auth.credentials(META)[0]["client_assertion"] != form["client_assertion"]  # new jti each time
    assert private not in repr(auth)


def test_unusable_private_key_names_the_field_not_the_key() -> None:
    auth = PrivateKeyJwtAuth("c", "client-1", Secret("-----BEGIN PRIVATE KEY-----\nnot-a-key\n"))
    with pytest.raises(ConnectionFieldError, match="password") as info:
        auth.credentials(META)
    assert "not-a-key" not in str(info.value)


def test_client_secret_basic_form_encodes() -> None:
    form, basic = ClientSecretAuth("id with space", Secret("s:e/cret")).credentials(META)
    assert form == {} and basic == ("id+with+space", "s%3Ae%2Fcret")


def oidc(password: str | None = "secret-x", **extra: Any) -> OidcClientConfig:
    return OidcClientConfig.from_connection("prod", "https://idp.test", "client-1", password, extra)


def test_token_exchange_config(tmp_path: Path) -> None:
    cfg = oidc(grant_type="urn:ietf:params:oauth:grant-type:token-exchange", subject_token_file=str(tmp_path / "t"))
    assert cfg.grant == "token_exchange" and cfg.subject_source is not None
    assert cfg.cache_key[-1] == f"token file {tmp_path / 't'}"


def test_private_key_jwt_config_reads_key_from_password_with_escaped_newlines() -> None:
    private, _ = pem()
    cfg = oidc(private.replace("\n", "\\n"), client_auth="private_key_jwt", key_id="k")
    assert cfg.private_key == private.strip() and cfg.client_secret is None
    assert private not in repr(cfg)


@pytest.mark.parametrize(
    ("password", "extra", "field"),
    [
        ("s", {"grant_type": "token_exchange"}, "subject_token_source"),
        ("s", {"subject_token_file": "/x"}, "grant_type"),
        ("s", {"client_auth": "tls"}, "client_auth"),
        (None, {"client_auth": "private_key_jwt"}, "password"),
        ("s", {"private_key": "x"}, "private_key"),
        ("s", {"assertion_alg": "HS256"}, "assertion_alg"),
        ("s", {"grant_type": "token_exchange", "username": "me", "subject_token_file": "/x"}, "username"),
    ],
)
def test_oidc_config_errors(password: str | None, extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ConnectionFieldError) as info:
        oidc(password, **extra)
    assert info.value.field == field


def test_declared_groups() -> None:
    assert oidc(groups="a, b c").groups == ("a", "b", "c")


def aws(login: str | None = None, password: str | None = None, **extra: Any) -> AwsWebIdentityConfig:
    base = {"role_arn": ROLE, "region_name": "eu-west-1", "subject_token_file": "/var/run/token"}
    return AwsWebIdentityConfig.from_connection("aws", login, password, base | extra)


def test_aws_config_defaults() -> None:
    cfg = aws()
    assert (cfg.session_name, cfg.duration_seconds, cfg.region) == ("idbt-aws", 3600, "eu-west-1")
    assert cfg.subject_check is None
    checked = aws(subject_issuer="https://oidc.eks.test/id/X")
    assert checked.subject_check is not None and checked.subject_check.audience == ("sts.amazonaws.com",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role_arn": "arn:aws:iam::1:user/x"}, "role_arn"),
        ({"duration_seconds": 60}, "duration_seconds"),
        ({"role_session_name": "has space"}, "role_session_name"),
        ({"sts_endpoint_url": "http://sts.example.test"}, "sts_endpoint_url"),
        ({"aws_secret_access_key": "x"}, "aws_secret_access_key"),
        ({"password": "secret"}, "password"),
    ],
)
def test_aws_config_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConnectionFieldError) as info:
        aws(**kwargs)
    assert info.value.field == field


def test_aws_region_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConnectionFieldError, match="region_name"):
        AwsWebIdentityConfig.from_connection("aws", None, None, {"role_arn": ROLE, "subject_token_file": "/t"})
