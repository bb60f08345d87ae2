"""Entra claims to identity (identity/azure/claims.py): object id and app id, roles before declared groups, only
non-personal attributes, and the issuers a tenant's tokens may carry."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_idbt.errors import TokenVerificationError
from airflow_provider_idbt.identity.azure.claims import (
    TenantMetadata,
    accepted_issuers,
    identity_from_entra_claims,
)
from airflow_provider_idbt.identity.azure.clouds import CLOUDS

PUBLIC = CLOUDS["AzurePublicCloud"]
TENANT = "7f3c1e2a-4b5d-4c6e-8f90-a1b2c3d4e5f6"
BASE = {"iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT, "exp": int(time.time()) + 600, "ver": "1.0"}


def test_v1_app_token() -> None:
    claims = BASE | {"oid": "sp-oid", "sub": "sp-oid", "appid": "app-1", "roles": ["a", "b", "a"], "aud": "x/"}
    identity, azure = identity_from_entra_claims(claims, "tok", cloud=PUBLIC, declared_groups=("declared",))
    assert (identity.subject, identity.principal, identity.groups) == ("sp-oid", "app-1", ("a", "b"))
    assert identity.attributes == {"azure_cloud": "AzurePublicCloud", "tid": TENANT}
    assert azure.version == "1.0" and azure.roles == ("a", "b")


def test_declared_groups_when_no_roles_and_upn_kept_out_of_the_identity() -> None:
    claims = BASE | {"oid": "o", "azp": "app-2", "upn": "person@contoso.test", "groups": ["g-guid"]}
    identity, azure = identity_from_entra_claims(claims, "tok", cloud=PUBLIC, declared_groups=("analytics",))
    assert identity.principal == "app-2" and identity.groups == ("analytics",)  # never the groups claim
    assert azure.upn == "person@contoso.test"
    shown = json.dumps(identity.as_event()) + repr(identity) + repr(azure) + json.dumps(dict(identity.attributes))
    assert "person@contoso.test" not in shown


def test_no_subject_or_no_exp() -> None:
    with pytest.raises(TokenVerificationError, match="no object id"):
        identity_from_entra_claims({"iss": "i", "exp": 1}, "t", cloud=PUBLIC, declared_groups=())
    with pytest.raises(TokenVerificationError, match="no exp"):
        identity_from_entra_claims({"iss": "i", "oid": "o"}, "t", cloud=PUBLIC, declared_groups=())


def test_accepted_issuers_per_cloud() -> None:
    metadata = TenantMetadata(f"https://login.microsoftonline.com/{TENANT}/v2.0", "https://k.test/keys", TENANT)
    assert accepted_issuers(metadata, PUBLIC) == (metadata.issuer, f"https://sts.windows.net/{TENANT}/")
    china = accepted_issuers(metadata, CLOUDS["AzureChinaCloud"])
    assert china[1] == f"https://sts.chinacloudapi.cn/{TENANT}/"
    assert accepted_issuers(TenantMetadata("https://op.test/t/v2.0", "https://k", None), PUBLIC) == (
        "https://op.test/t/v2.0",
    )
