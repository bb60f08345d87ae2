"""msal (through the Azure exchanger) against the third-party oidc-provider (npm) over HTTPS with the test CA,
mounted under a tenant path like an Entra authority (`https://host/<tenant>/v2.0`, `instance_discovery=False`):
a client secret (client_secret_post, as msal sends it) and a certificate (private_key_jwt, PS256 with x5t#S256)."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from jwt.algorithms import RSAAlgorithm

from airflow_provider_idbt.identity.azure.claims import clear_tenant_metadata
from airflow_provider_idbt.identity.azure.config import AzureIdentityConfig
from airflow_provider_idbt.identity.azure.exchanger import AzureCredentialRejected, AzureExchanger, clear_applications
from airflow_provider_idbt.identity.transport import RetryPolicy
from tests.fixtures.entra_server import new_certificate
from tests.fixtures.node_server import ensure_package, run_node_server
from tests.fixtures.test_ca import ThrowawayCA

pytestmark = pytest.mark.integration

TENANT = str(uuid.uuid4())
RESOURCE = "https://warehouse.example.test"
SECRET_CLIENT = str(uuid.uuid4())
CERT_CLIENT = str(uuid.uuid4())
FAST = RetryPolicy(attempts=3, backoff=0.05)


@dataclass
class TenantProvider:
    host: str  # https://127.0.0.1:<port>: the authority host; the tenant path is added by the connection
    issuer: str
    secret: str
    key_pem: str
    cert_pem: str


@pytest.fixture(scope="module")
def tenant_provider(test_ca: ThrowawayCA) -> Iterator[TenantProvider]:
    ensure_package("oidc-provider")
    secret = "op-" + secrets.token_urlsafe(18)
    key_pem, cert_pem, cert = new_certificate("msal-cert-client")
    jwk = json.loads(RSAAlgorithm.to_jwk(cert.public_key()))  # type: ignore[arg-type]
    clients = [
        {
            "client_id": SECRET_CLIENT,
            "client_secret": secret,
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post",
        },
        {
            "client_id": CERT_CLIENT,
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "PS256",
            "jwks": {"keys": [jwk | {"use": "sig", "alg": "PS256"}]},
        },
    ]
    server_cert, server_key = test_ca.server_cert("oidc-provider-tenant")
    env = {
        "IDBT_OP_TLS_CERT": str(server_cert),
        "IDBT_OP_TLS_KEY": str(server_key),
        "IDBT_OP_CLIENTS": json.dumps(clients),
        "IDBT_OP_RESOURCES": json.dumps({RESOURCE: {"scope": "warehouse.read", "ttl": 900}}),
        "IDBT_OP_PATH_PREFIX": f"/{TENANT}/v2.0",
    }
    with run_node_server("oidc_provider_server.mjs", env) as line:
        issuer = str(line["issuer"])
        yield TenantProvider(issuer.removesuffix(f"/{TENANT}/v2.0"), issuer, secret, key_pem, cert_pem)


@pytest.fixture(autouse=True)
def _fresh_msal() -> Iterator[None]:
    clear_applications()
    clear_tenant_metadata()
    yield
    clear_applications()


def exchanger(op: TenantProvider, login: str, password: str, **extra: Any) -> AzureExchanger:
    extra = {"tenantId": TENANT, "authority_host": op.host, "scopes": f"{RESOURCE}/.default"} | extra
    return AzureExchanger(AzureIdentityConfig.from_connection("op_azure", login, password, extra), retry=FAST)


def test_client_secret_through_msal(tenant_provider: TenantProvider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = exchanger(tenant_provider, SECRET_CLIENT, tenant_provider.secret, groups="dbt-runners").fetch()
    identity = token.identity
    assert identity.issuer == tenant_provider.issuer  # the v2.0 issuer under the tenant path
    assert identity.subject == identity.principal == SECRET_CLIENT
    assert identity.audience == (RESOURCE,) and identity.groups == ("dbt-runners",)
    assert 800 < token.remaining().total_seconds() <= 900
    for secret in (token.reveal(), tenant_provider.secret):
        assert secret not in caplog.text and secret not in repr(token)


def test_certificate_through_msal(tenant_provider: TenantProvider) -> None:
    ex = exchanger(tenant_provider, CERT_CLIENT, tenant_provider.key_pem + tenant_provider.cert_pem)
    first = ex.fetch()
    assert first.identity.subject == CERT_CLIENT
    assert ex.fetch() == first  # msal's cache: 15 minutes left is more than its 5-minute margin
    # No fresh fetch here: msal reuses a certificate assertion while it is valid, which Entra accepts and
    # oidc-provider refuses (one use per jti); the Entra-shaped server's tests cover fresh certificate tokens.


def test_invalid_client_secret(tenant_provider: TenantProvider) -> None:
    with pytest.raises(AzureCredentialRejected, match="invalid_client") as info:
        exchanger(tenant_provider, SECRET_CLIENT, "wrong-secret-0123456789").fetch()
    assert not info.value.retryable and "wrong-secret-0123456789" not in str(info.value)


def test_certificate_the_provider_does_not_know(tenant_provider: TenantProvider) -> None:
    key_pem, cert_pem, _ = new_certificate("unknown")
    with pytest.raises(AzureCredentialRejected, match="invalid_client"):
        exchanger(tenant_provider, CERT_CLIENT, key_pem + cert_pem).fetch()
