"""The `aws_outbound` subject-token source (identity/aws/outbound.py): its connection fields, how each connection
type wires it, and how STS's refusals map to errors (calls to STS: tests/integration/test_aws_outbound_identity.py)."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError, CredentialRejected
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.aws.outbound import TRANSIENT_CODES, AwsOutboundTokenSource
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.google.config import GoogleFederationConfig
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.sources import (
    AWS_OUTBOUND_KEYS,
    JWT_TOKEN_TYPE,
    SOURCE_KEYS,
    SOURCE_KINDS,
    source_from_extra,
)

PROVIDER = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/mwaa/providers/aws-out"


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def outbound(extra: dict[str, object], **kwargs: object) -> AwsOutboundTokenSource:
    source = source_from_extra("c", {"subject_token_source": "aws_outbound", **extra}, timeout=7, **kwargs)  # type: ignore[arg-type]
    assert isinstance(source, AwsOutboundTokenSource)
    return source


def test_defaults_and_fields() -> None:
    source = outbound({"aws_audience": "https://a.example, https://b.example", "aws_region": "eu-west-1"})
    assert source.audiences == ("https://a.example", "https://b.example")
    assert (source.signing_algorithm, source.duration_seconds, source.region) == ("RS256", 300, "eu-west-1")
    assert source.endpoint_url is None and source.tags == () and source.timeout == 7
    assert source.token_type == JWT_TOKEN_TYPE
    assert source.description == "AWS STS GetWebIdentityToken for audience https://a.example, https://b.example"
    full = outbound(
        {
            "aws_audience": ["api://AzureADTokenExchange"],
            "aws_region": "us-west-2",
            "aws_signing_algorithm": "ES384",
            "aws_duration_seconds": "900",
            "aws_sts_endpoint_url": "https://sts.us-west-2.amazonaws.com",
            "aws_request_tags": '{"team": "analytics", "job": "dbt"}',
        }
    )
    assert (full.signing_algorithm, full.duration_seconds) == ("ES384", 900)
    assert full.endpoint_url == "https://sts.us-west-2.amazonaws.com"
    assert full.tags == (("job", "dbt"), ("team", "analytics"))
    assert outbound({"aws_audience": "x", "aws_region": "r", "aws_request_tags": "job=dbt, team=a"}).tags == (
        ("job", "dbt"),
        ("team", "a"),
    )


def test_region_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert outbound({"aws_audience": "x"}).region == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # what MWAA and the SDKs set; it wins, as in botocore
    assert outbound({"aws_audience": "x"}).region == "eu-central-1"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"aws_region": "eu-west-1"}, "aws_audience"),
        ({"aws_region": "eu-west-1", "aws_audience": " ".join(f"a{n}" for n in range(11))}, "aws_audience"),
        ({"aws_region": "eu-west-1", "aws_audience": "a" * 1001}, "aws_audience"),
        ({"aws_audience": "x"}, "aws_region"),
        ({"aws_audience": "x", "aws_region": "r", "aws_signing_algorithm": "HS256"}, "aws_signing_algorithm"),
        ({"aws_audience": "x", "aws_region": "r", "aws_signing_algorithm": "rs256"}, "aws_signing_algorithm"),
        ({"aws_audience": "x", "aws_region": "r", "aws_duration_seconds": 59}, "aws_duration_seconds"),
        ({"aws_audience": "x", "aws_region": "r", "aws_duration_seconds": 3601}, "aws_duration_seconds"),
        ({"aws_audience": "x", "aws_region": "r", "aws_duration_seconds": "five"}, "aws_duration_seconds"),
        (
            {"aws_audience": "x", "aws_region": "r", "aws_sts_endpoint_url": "http://sts.example.com"},
            "aws_sts_endpoint_url",
        ),
        ({"aws_audience": "x", "aws_region": "r", "aws_sts_endpoint_url": "sts.amazonaws.com"}, "aws_sts_endpoint_url"),
        ({"aws_audience": "x", "aws_region": "r", "aws_request_tags": "job"}, "aws_request_tags"),
        ({"aws_audience": "x", "aws_region": "r", "aws_request_tags": "{not json"}, "aws_request_tags"),
        ({"aws_audience": "x", "aws_region": "r", "aws_request_tags": {"n": 1}}, "aws_request_tags"),
        (
            {"aws_audience": "x", "aws_region": "r", "aws_request_tags": {f"k{n}": "v" for n in range(51)}},
            "aws_request_tags",
        ),
    ],
)
def test_bad_fields_are_named(extra: dict[str, object], field: str) -> None:
    with pytest.raises(ConnectionFieldError) as raised:
        outbound(extra)
    assert raised.value.field == field and raised.value.conn_id == "c"


def test_every_field_is_a_known_source_key_and_no_key_is_masked_by_airflow() -> None:
    try:
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
    except ImportError:  # Airflow 3.1
        from airflow.sdk.execution_time.secrets_masker import should_hide_value_for_key  # type: ignore[no-redef]

    assert "aws_outbound" in SOURCE_KINDS and AWS_OUTBOUND_KEYS <= SOURCE_KEYS
    # Airflow hides the values of extras whose key it deems sensitive; an audience must stay readable in the log.
    assert should_hide_value_for_key("subject_token_file")  # the rule this test relies on still holds
    assert not [key for key in AWS_OUTBOUND_KEYS if should_hide_value_for_key(key)]


def test_google_connection_defaults_the_audience_to_the_providers_default() -> None:
    extra = {"audience": PROVIDER, "subject_token_source": "aws_outbound", "aws_region": "eu-west-1"}
    config = GoogleFederationConfig.from_connection("g", None, None, extra)
    assert isinstance(config.subject_source, AwsOutboundTokenSource)
    assert config.subject_source.audiences == ("https:" + PROVIDER,)
    assert config.subject_token_type == JWT_TOKEN_TYPE
    custom = GoogleFederationConfig.from_connection("g", None, None, extra | {"aws_audience": "sts.googleapis.com"})
    assert isinstance(custom.subject_source, AwsOutboundTokenSource)
    assert custom.subject_source.audiences == ("sts.googleapis.com",)


def test_azure_connection_defaults_the_audience_to_the_clouds_federation_audience() -> None:
    extra = {
        "tenantId": "contoso.onmicrosoft.com",
        "warehouse": "azure_sql",
        "subject_token_source": "aws_outbound",
        "aws_region": "eu-west-1",
    }
    config = AzureIdentityConfig.from_connection("z", "0a1b2c3d-1111-4222-8333-944455556666", None, extra)
    assert config.credential == "federated" and isinstance(config.subject_source, AwsOutboundTokenSource)
    assert config.subject_source.audiences == ("api://AzureADTokenExchange",)
    china = AzureIdentityConfig.from_connection(
        "z", "0a1b2c3d-1111-4222-8333-944455556666", None, extra | {"cloud_environment": "AzureChinaCloud"}
    )
    assert isinstance(china.subject_source, AwsOutboundTokenSource)
    assert china.subject_source.audiences == ("api://AzureADTokenExchangeChina",)


def test_oidc_token_exchange_needs_an_explicit_audience() -> None:
    extra = {
        "issuer": "https://idp.example.com",
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_source": "aws_outbound",
        "aws_region": "eu-west-1",
    }
    with pytest.raises(ConnectionFieldError, match="aws_audience"):
        OidcClientConfig.from_connection("o", None, "client", "secret", extra)
    config = OidcClientConfig.from_connection(
        "o", None, "client", "secret", extra | {"aws_audience": "https://idp.example.com"}
    )
    assert isinstance(config.subject_source, AwsOutboundTokenSource)


def test_aws_connection_refuses_it() -> None:
    # AWS documents that these JWTs cannot be used for AssumeRoleWithWebIdentity.
    extra = {"role_arn": "arn:aws:iam::123456789012:role/dbt", "region_name": "eu-west-1"}
    with pytest.raises(ConnectionFieldError, match="AssumeRoleWithWebIdentity") as raised:
        AwsWebIdentityConfig.from_connection("a", None, None, extra | {"subject_token_source": "aws_outbound"})
    assert raised.value.field == "subject_token_source"


@pytest.mark.parametrize(
    ("code", "kind", "fix"),
    [
        ("OutboundWebIdentityFederationDisabledException", ConfigurationError, "enable-outbound-web-identity"),
        ("AccessDenied", CredentialRejected, "sts:GetWebIdentityToken"),
        ("SessionDurationEscalationException", ConfigurationError, "aws_duration_seconds"),
        ("JWTPayloadSizeExceededException", ConfigurationError, "aws_request_tags"),
        ("ValidationError", ConfigurationError, "aws_signing_algorithm"),
        ("InvalidClientTokenId", CredentialRejected, "access key"),
        ("SignatureDoesNotMatch", CredentialRejected, "clock"),
        ("SomethingNew", CredentialRejected, "aws_* fields"),
    ],
)
def test_refusals_are_permanent_errors_with_a_fix(code: str, kind: type[Exception], fix: str) -> None:
    source = outbound({"aws_audience": "api://AzureADTokenExchange", "aws_region": "eu-west-1"})
    error = source._refusal(code, 403, "what STS said")
    assert type(error) is kind and not getattr(error, "retryable", True)
    assert f"({code}: what STS said)" in str(error) and fix in str(error)
    assert "connection `c`" in str(error) and "api://AzureADTokenExchange" in str(error)


def test_throttling_and_expired_worker_credentials_are_transient() -> None:
    assert {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ExpiredToken"} <= TRANSIENT_CODES
    assert not TRANSIENT_CODES & {"AccessDenied", "OutboundWebIdentityFederationDisabledException"}
