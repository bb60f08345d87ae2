"""AwsWebIdentityHook: an `idbt_aws` connection to temporary IAM role credentials, cached and masked."""

from __future__ import annotations

from collections.abc import Iterable

from airflow_provider_idbt.hooks.base import IdentityHook
from airflow_provider_idbt.identity.aws.config import AwsWebIdentityConfig
from airflow_provider_idbt.identity.aws.exchanger import AwsFederatedToken, AwsWebIdentityExchanger
from airflow_provider_idbt.identity.token import FederatedToken


class AwsWebIdentityHook(IdentityHook):
    """Assumes an IAM role with the worker's web identity (IRSA, MWAA, or any OIDC token file).

    :param identity_conn_id: id of an `idbt_aws` connection: extras `role_arn`, `region_name`, `groups`,
        `subject_token_source` (default: AWS_WEB_IDENTITY_TOKEN_FILE), see docs/connections/aws.md.
        The connection holds no key; ``get_token()`` returns an :class:`AwsFederatedToken`.
    """

    conn_type = "idbt_aws"
    hook_name = "idbt: AWS web identity"
    default_conn_name = "idbt_aws_default"

    def get_config(self) -> AwsWebIdentityConfig:
        conn = self.connection()
        return AwsWebIdentityConfig.from_connection(self.identity_conn_id, conn.login, conn.password, conn.extra_dejson)

    def _fetch(self, config: AwsWebIdentityConfig) -> FederatedToken:
        return AwsWebIdentityExchanger(config).fetch()

    def _token_secrets(self, token: FederatedToken) -> Iterable[str]:
        if isinstance(token, AwsFederatedToken):
            return (token.reveal(), *token.credentials.secrets())
        return (token.reveal(),)
