"""Entra ID per cloud (authority host, token issuers, federation audience) and the warehouse scopes per cloud."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AzureCloud:
    """One Entra ID cloud. Names are the Azure provider's `cloud_environment` values."""

    name: str
    authority_host: str
    # v1.0 access tokens (what Azure SQL, PostgreSQL and most first-party resources get) carry this issuer;
    # v2.0 tokens carry the issuer of the tenant's discovery document.
    v1_issuer_host: str
    # The `aud` Entra expects in a federated credential's subject token.
    federation_audience: str
    # Resource of each warehouse's `.default` scope in this cloud.
    resources: dict[str, str] = field(default_factory=dict)


# Azure Databricks is one multi-tenant first-party application, the same id in every cloud.
DATABRICKS_RESOURCE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"

CLOUDS: dict[str, AzureCloud] = {
    cloud.name: cloud
    for cloud in (
        AzureCloud(
            "AzurePublicCloud",
            "login.microsoftonline.com",
            "sts.windows.net",
            "api://AzureADTokenExchange",
            {
                "azure_sql": "https://database.windows.net",
                "postgresql": "https://ossrdbms-aad.database.windows.net",
                "databricks": DATABRICKS_RESOURCE,
            },
        ),
        AzureCloud(
            "AzureUSGovernment",
            "login.microsoftonline.us",
            "sts.windows.net",
            "api://AzureADTokenExchangeUSGov",
            {
                "azure_sql": "https://database.usgovcloudapi.net",
                "postgresql": "https://ossrdbms-aad.database.usgovcloudapi.net",
                "databricks": DATABRICKS_RESOURCE,
            },
        ),
        AzureCloud(
            "AzureChinaCloud",
            "login.chinacloudapi.cn",
            "sts.chinacloudapi.cn",
            "api://AzureADTokenExchangeChina",
            {
                "azure_sql": "https://database.chinacloudapi.cn",
                "postgresql": "https://ossrdbms-aad.database.chinacloudapi.cn",
                "databricks": DATABRICKS_RESOURCE,
            },
        ),
    )
}
DEFAULT_CLOUD = "AzurePublicCloud"

# Warehouses that take Entra tokens, by the name a connection's `warehouse` extra uses; the value names the row
# of AzureCloud.resources. Fabric and Synapse SQL endpoints take Azure SQL's token. Snowflake external OAuth has
# no fixed resource: it is the application ID URI of the app registration that represents Snowflake.
WAREHOUSES: dict[str, str | None] = {
    "azure_sql": "azure_sql",
    "fabric": "azure_sql",
    "synapse": "azure_sql",
    "postgresql": "postgresql",
    "databricks": "databricks",
    "snowflake": None,
}


def default_scope(resource: str) -> str:
    """The client-credentials scope of a resource: all its application permissions (`<resource>/.default`)."""
    return resource.rstrip("/") + "/.default"


def resource_of(scope: str) -> str:
    """The resource a scope is for: the part before the last path segment (`.default` or a permission)."""
    head, _, _ = scope.rpartition("/")
    return head or scope


def accepted_audiences(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """The `aud` values Entra puts in a token for these scopes: the resource, with or without its trailing slash.

    v2.0 tokens of custom APIs carry the application's client id instead; give it in the `audience` extra.
    """
    found: list[str] = []
    for scope in scopes:
        resource = resource_of(scope).rstrip("/")
        found += [resource, resource + "/"]
    return tuple(dict.fromkeys(found))
