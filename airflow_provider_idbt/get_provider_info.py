"""The provider's single registry for Airflow: hooks, connection types and their form fields, links, plugins."""

from __future__ import annotations

from typing import Any

from airflow_provider_idbt import __version__

_OIDC_FIELDS: dict[str, Any] = {
    "audience": {
        "label": "Audience",
        "description": "The `aud` the access token must carry (the API or warehouse it is for).",
        "schema": {"type": ["string", "null"]},
    },
    "scope": {
        "label": "Scopes",
        "description": "Space-separated scopes to request.",
        "schema": {"type": ["string", "null"]},
    },
    "groups_claim": {
        "label": "Groups claim",
        "description": "Claim that lists the identity's groups or roles (default: groups).",
        "schema": {"type": ["string", "null"], "default": "groups"},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-idbt",
        "name": "Identity-aware dbt (idbt)",
        "description": (
            "Runs each dbt model as its own Airflow task with a short-lived federated token minted for "
            "that task, and logs who ran which model, reading and writing what."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Identity-aware dbt",
                "external-doc-url": "https://github.com/airflow-provider-idbt/airflow-provider-idbt",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Identity-aware dbt",
                "python-modules": ["airflow_provider_idbt.operators.dbt_identity"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Identity-aware dbt",
                "python-modules": ["airflow_provider_idbt.hooks.oidc"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "idbt_oidc",
                "hook-class-name": "airflow_provider_idbt.hooks.oidc.OidcTokenHook",
                "hook-name": "idbt: OpenID Connect identity",
                "conn-fields": _OIDC_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Issuer URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://idp.example.com/oauth2/default",
                        "login": "dbt-prod-runner",
                    },
                },
            }
        ],
        "extra-links": ["airflow_provider_idbt.links.DbtDocsLink"],
        "plugins": [{"name": "idbt", "plugin-class": "airflow_provider_idbt.plugins.idbt_plugin.IdbtPlugin"}],
    }
