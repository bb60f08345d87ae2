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
    "groups": {
        "label": "Groups (declared)",
        "description": "Comma-separated groups of this identity, used only when its tokens carry none.",
        "schema": {"type": ["string", "null"]},
    },
    "grant_type": {
        "label": "Grant",
        "description": "client_credentials (default) or urn:ietf:params:oauth:grant-type:token-exchange.",
        "schema": {"type": ["string", "null"], "default": "client_credentials"},
    },
    "client_auth": {
        "label": "Client authentication",
        "description": "client_secret (password = secret) or private_key_jwt (password = PEM private key).",
        "schema": {"type": ["string", "null"], "default": "client_secret"},
    },
    "key_id": {
        "label": "Key id",
        "description": "kid of the client's key registered at the IdP (private_key_jwt).",
        "schema": {"type": ["string", "null"]},
    },
}

_ROLE_MAPPING_FIELD: dict[str, Any] = {
    "role_mapping": {
        "label": "Role mapping (JSON)",
        "description": 'Identity groups to deployment roles, e.g. {"analytics": ["transformer"]}; overrides '
        "[idbt] role_mapping for this connection.",
        "schema": {"type": ["string", "null"]},
    },
}

# Set by the platform team: which jobs may use this identity. A guard rail; the warehouse's GRANTs stay the boundary.
_JOB_BINDING_FIELDS: dict[str, Any] = {
    "allowed_dags": {
        "label": "Allowed DAGs",
        "description": "Comma-separated DAG id globs (team_a_*) whose tasks may use this identity; empty: any DAG.",
        "schema": {"type": ["string", "null"]},
    },
    "allowed_tags": {
        "label": "Allowed DAG tags",
        "description": "Comma-separated tag globs; the DAG must carry at least one. Empty: any tags.",
        "schema": {"type": ["string", "null"]},
    },
    "allowed_bundles": {
        "label": "Allowed DAG bundles",
        "description": "Comma-separated DAG bundle name globs (the platform's, not the DAG author's). Empty: any.",
        "schema": {"type": ["string", "null"]},
    },
}

_SUBJECT_FIELDS: dict[str, Any] = {
    "subject_token_source": {
        "label": "Subject token source",
        "description": "Where the worker's own identity comes from: file, aws_web_identity, azure_federated, "
        "gce_metadata, aws_outbound (AWS STS GetWebIdentityToken; Google, Azure and OIDC connections).",
        "schema": {"type": ["string", "null"]},
    },
    "subject_token_file": {
        "label": "Subject token file",
        "description": "Path of a projected service-account token (source `file`).",
        "schema": {"type": ["string", "null"]},
    },
    "subject_token_audience": {
        "label": "Metadata ID token audience",
        "description": "Audience of the ID token asked from the GCE metadata server (source `gce_metadata`).",
        "schema": {"type": ["string", "null"]},
    },
    "aws_audience": {
        "label": "AWS outbound token audience",
        "description": "Audience(s) of the JWT asked from AWS STS GetWebIdentityToken (source `aws_outbound`); "
        "default: what the identity provider accepts by default (Google's provider URL, api://AzureADTokenExchange).",
        "schema": {"type": ["string", "null"]},
    },
    "aws_region": {
        "label": "AWS outbound token region",
        "description": "Region of the STS endpoint for source `aws_outbound` (default: AWS_REGION of the worker).",
        "schema": {"type": ["string", "null"]},
    },
    "subject_issuer": {
        "label": "Subject token issuer (optional check)",
        "description": "If set, the subject token is verified against this issuer's keys before it is exchanged.",
        "schema": {"type": ["string", "null"]},
    },
}

_AWS_FIELDS: dict[str, Any] = {
    "role_arn": {
        "label": "Role ARN",
        "description": "The IAM role to assume with the worker's web identity.",
        "schema": {"type": ["string", "null"]},
    },
    "region_name": {
        "label": "Region",
        "description": "Region of the STS endpoint (default: AWS_REGION of the worker).",
        "schema": {"type": ["string", "null"]},
    },
    "role_session_name": {
        "label": "Role session name",
        "description": "Shows in CloudTrail (default: idbt-<connection id>).",
        "schema": {"type": ["string", "null"]},
    },
    "duration_seconds": {
        "label": "Session duration (s)",
        "description": "900-43200, at most the role's maximum session duration (default 3600).",
        "schema": {"type": ["integer", "null"], "default": 3600},
    },
    "groups": {
        "label": "Groups (declared)",
        "description": "Comma-separated groups of this identity (AWS credentials carry none).",
        "schema": {"type": ["string", "null"]},
    },
}


_GOOGLE_FIELDS: dict[str, Any] = {
    "mode": {
        "label": "Mode",
        "description": "federation (default: the worker's subject token through Google STS) or environment (the "
        "worker's own Google credentials, e.g. Cloud Composer's service account, impersonating `target_principal`).",
        "schema": {"type": ["string", "null"], "default": "federation"},
    },
    "audience": {
        "label": "Workload identity provider",
        "description": "Full resource name: //iam.googleapis.com/projects/<number>/locations/global/"
        "workloadIdentityPools/<pool>/providers/<provider> (mode federation).",
        "schema": {"type": ["string", "null"]},
    },
    "target_principal": {
        "label": "Service account to impersonate",
        "description": "Email of the service account the tasks run as (optional in mode federation).",
        "schema": {"type": ["string", "null"]},
    },
    "delegates": {
        "label": "Delegates",
        "description": "Comma-separated service accounts of a delegation chain, in order.",
        "schema": {"type": ["string", "null"]},
    },
    "scopes": {
        "label": "Scopes",
        "description": "Comma- or space-separated OAuth scopes (default: cloud-platform).",
        "schema": {"type": ["string", "null"]},
    },
    "lifetime_seconds": {
        "label": "Token lifetime (s)",
        "description": "600-3600 (up to 43200 with the organisation policy that allows it; default 3600).",
        "schema": {"type": ["integer", "null"], "default": 3600},
    },
    "project_id": {
        "label": "Project id",
        "description": "Default project for Google provider hooks that use this connection.",
        "schema": {"type": ["string", "null"]},
    },
    "groups": {
        "label": "Groups (declared)",
        "description": "Comma-separated groups of this identity (Google access tokens carry none).",
        "schema": {"type": ["string", "null"]},
    },
    "sts_endpoint": {
        "label": "STS endpoint",
        "description": "Override of https://sts.googleapis.com (Private Service Connect, another universe).",
        "schema": {"type": ["string", "null"]},
    },
    "iam_credentials_endpoint": {
        "label": "IAM Credentials endpoint",
        "description": "Override of https://iamcredentials.googleapis.com.",
        "schema": {"type": ["string", "null"]},
    },
    "gce_metadata_url": {
        "label": "Metadata server URL",
        "description": "Override of http://metadata.google.internal/computeMetadata/v1.",
        "schema": {"type": ["string", "null"]},
    },
    "universe_domain": {
        "label": "Universe domain",
        "description": "googleapis.com unless the project lives in another Google Cloud universe.",
        "schema": {"type": ["string", "null"]},
    },
}


_AZURE_FIELDS: dict[str, Any] = {
    "tenantId": {
        "label": "Tenant ID",
        "description": "Directory (tenant) id or verified domain of the app registration (default AZURE_TENANT_ID).",
        "schema": {"type": ["string", "null"]},
    },
    "cloud_environment": {
        "label": "Cloud",
        "description": "AzurePublicCloud (default), AzureUSGovernment or AzureChinaCloud.",
        "schema": {"type": ["string", "null"], "default": "AzurePublicCloud"},
    },
    "authority_host": {
        "label": "Authority host",
        "description": "Override of the cloud's login host, https only (default AZURE_AUTHORITY_HOST or the cloud's).",
        "schema": {"type": ["string", "null"]},
    },
    "warehouse": {
        "label": "Warehouse",
        "description": "azure_sql, fabric, synapse, postgresql, databricks or snowflake: picks the scope.",
        "schema": {"type": ["string", "null"]},
    },
    "scopes": {
        "label": "Scopes",
        "description": "Instead of warehouse: e.g. https://database.windows.net/.default.",
        "schema": {"type": ["string", "null"]},
    },
    "resource": {
        "label": "Resource (Snowflake)",
        "description": "Application ID URI of the app registration that represents Snowflake (api://...).",
        "schema": {"type": ["string", "null"]},
    },
    "certificate_path": {
        "label": "Certificate path",
        "description": "PEM (key + certificate) or PFX file of a certificate credential.",
        "schema": {"type": ["string", "null"]},
    },
    "groups": {
        "label": "Groups (declared)",
        "description": "Comma-separated groups, used only when the token carries no app roles.",
        "schema": {"type": ["string", "null"]},
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
                "python-modules": [
                    "airflow_provider_idbt.hooks.oidc",
                    "airflow_provider_idbt.hooks.aws",
                    "airflow_provider_idbt.hooks.google",
                    "airflow_provider_idbt.hooks.azure",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "idbt_oidc",
                "hook-class-name": "airflow_provider_idbt.hooks.oidc.OidcTokenHook",
                "hook-name": "idbt: OpenID Connect identity",
                "conn-fields": _OIDC_FIELDS | _SUBJECT_FIELDS | _ROLE_MAPPING_FIELD | _JOB_BINDING_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Issuer URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://idp.example.com/oauth2/default",
                        "login": "dbt-prod-runner",
                    },
                },
            },
            {
                "connection-type": "idbt_aws",
                "hook-class-name": "airflow_provider_idbt.hooks.aws.AwsWebIdentityHook",
                "hook-name": "idbt: AWS web identity",
                "conn-fields": _AWS_FIELDS | _SUBJECT_FIELDS | _ROLE_MAPPING_FIELD | _JOB_BINDING_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login", "password"],
                    "relabeling": {},
                    "placeholders": {},
                },
            },
            {
                "connection-type": "idbt_google",
                "hook-class-name": "airflow_provider_idbt.hooks.google.GoogleWorkloadIdentityHook",
                "hook-name": "idbt: Google workload identity",
                "conn-fields": _GOOGLE_FIELDS | _SUBJECT_FIELDS | _ROLE_MAPPING_FIELD | _JOB_BINDING_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login", "password"],
                    "relabeling": {},
                    "placeholders": {},
                },
            },
            {
                "connection-type": "idbt_azure",
                "hook-class-name": "airflow_provider_idbt.hooks.azure.AzureIdentityHook",
                "hook-name": "idbt: Azure / Entra ID identity",
                "conn-fields": _AZURE_FIELDS | _SUBJECT_FIELDS | _ROLE_MAPPING_FIELD | _JOB_BINDING_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port"],
                    "relabeling": {
                        "login": "Client ID",
                        "password": "Client secret or PEM certificate (empty: federated credential)",
                    },
                    "placeholders": {"login": "00000000-0000-0000-0000-000000000000"},
                },
            },
        ],
        "extra-links": ["airflow_provider_idbt.links.DbtDocsLink", "airflow_provider_idbt.links.ModelRunLink"],
        "config": {
            "idbt": {
                "description": "Identity-aware dbt: settings for every idbt task of this deployment.",
                "options": {
                    "role_mapping": {
                        "description": (
                            "JSON object from identity groups to deployment roles, used by the pre-flight "
                            "permission check and by warehouse_role_from_identity. An identity connection's "
                            "extra `role_mapping` takes precedence. Empty: each group counts as a role of the "
                            "same name."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": '{"analytics": ["transformer"], "finance": ["finance_admin"]}',
                        "default": "",
                    },
                    "execution_mode": {
                        "description": (
                            "How model tasks run dbt when they do not say: `subprocess` (a new dbt process per "
                            "run) or `warm` (a child forked by this host's warm dbt worker, which keeps dbt and "
                            "the manifest loaded; falls back to subprocess when it cannot take a run). Not "
                            "offered on the KubernetesExecutor."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "warm",
                        "default": "subprocess",
                    },
                },
            }
        },
        "plugins": [{"name": "idbt", "plugin-class": "airflow_provider_idbt.plugins.idbt_plugin.IdbtPlugin"}],
    }
