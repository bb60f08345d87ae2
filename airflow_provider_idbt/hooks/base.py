"""IdentityHook: what every idbt identity hook shares: connection lookup, secret masking, the token cache."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.get_provider_info import get_provider_info
from airflow_provider_idbt.identity.cache import TokenCache
from airflow_provider_idbt.identity.job_binding import JobBinding
from airflow_provider_idbt.identity.sources import SubjectToken, SubjectTokenSource
from airflow_provider_idbt.identity.token import FederatedToken
from airflow_provider_idbt.version_compat import AirflowNotFoundException, BaseHook, mask_secret

# One cache per worker process: tasks of the same connection in this process share a token while it lasts.
TOKEN_CACHE = TokenCache()


def missing_connection(conn_id: str, conn_type: str) -> ConfigurationError:
    return ConfigurationError(
        f"connection `{conn_id}` is not defined; create it (type `{conn_type}`) in the "
        f"Airflow UI, with `airflow connections add`, or as AIRFLOW_CONN_{conn_id.upper()}"
    )


class IdentityHook(BaseHook):
    """Base of the identity hooks: subclasses say how to validate their connection and fetch a token."""

    conn_type: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_name_attr = "identity_conn_id"

    def __init__(self, identity_conn_id: str | None = None) -> None:
        super().__init__()
        self.identity_conn_id = identity_conn_id or self.default_conn_name

    def connection(self) -> Any:
        """The Airflow connection, read the normal way (env vars and secrets backends work)."""
        try:
            conn = self.get_connection(self.identity_conn_id)
        except AirflowNotFoundException:
            raise missing_connection(self.identity_conn_id, self.conn_type) from None
        # Masked before validation, so even a config error logged by Airflow cannot show them.
        for value in (conn.password, *_secret_extras(conn.extra_dejson)):
            if value:
                mask_secret(value)
        return conn

    def check_job(self, dag_id: str, tags: Sequence[str] = (), bundle_name: str | None = None) -> None:
        """Refuse a task whose DAG the connection's ``allowed_dags``/``allowed_tags``/``allowed_bundles`` do not name.

        Raises :class:`~airflow_provider_idbt.errors.JobNotAllowed` (no token is minted), or a
        ``ConnectionFieldError`` for a malformed binding; returns when the connection binds no job.
        """
        JobBinding.from_extra(self.identity_conn_id, self.connection().extra_dejson or {}).check(
            dag_id, tags, bundle_name
        )

    def get_config(self) -> Any:
        raise NotImplementedError

    def _fetch(self, config: Any) -> FederatedToken:
        raise NotImplementedError

    def _cache_key(self, config: Any) -> tuple[Hashable, ...]:
        return tuple(config.cache_key)

    def _token_secrets(self, token: FederatedToken) -> Iterable[str]:
        return (token.reveal(),)

    def get_token(self, min_ttl: timedelta | int = 300) -> FederatedToken:
        """A token valid for at least ``min_ttl`` (seconds or timedelta), from the cache or the identity provider."""
        ttl = min_ttl if isinstance(min_ttl, timedelta) else timedelta(seconds=min_ttl)
        config = with_masked_source(self.get_config())

        def fetch() -> FederatedToken:
            token = self._fetch(config)
            self._mask(token)
            return token

        token = TOKEN_CACHE.get(self._cache_key(config), fetch, ttl)
        # Masked again for a cached token: the masker of this task may not have seen it yet.
        self._mask(token)
        return token

    def refresh_token(self, min_ttl: timedelta | int = 300) -> FederatedToken:
        """A new token from the identity provider, after the warehouse rejected the cached one."""
        config = self.get_config()
        TOKEN_CACHE.invalidate(self._cache_key(config))
        return self.get_token(min_ttl)

    def _mask(self, token: FederatedToken) -> None:
        for secret in self._token_secrets(token):
            mask_secret(secret)

    def get_conn(self) -> FederatedToken:
        return self.get_token()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form behaviour declared in get_provider_info, in the hook's key spelling."""
        entry = next(
            item for item in get_provider_info()["connection-types"] if item["connection-type"] == cls.conn_type
        )
        return {key.replace("-", "_"): value for key, value in entry["ui-field-behaviour"].items()}


@dataclass(frozen=True)
class MaskedSource:
    """A subject-token source whose every token is registered with the masker as soon as it is read."""

    source: SubjectTokenSource

    @property
    def description(self) -> str:
        return self.source.description

    def get(self, *, refresh: bool = False) -> SubjectToken:
        token = self.source.get(refresh=refresh)
        mask_secret(token.value.reveal())
        return token


def with_masked_source(config: Any) -> Any:
    """``config`` with its subject-token source wrapped in :class:`MaskedSource` (configs are frozen)."""
    source = getattr(config, "subject_source", None)
    return config if source is None else replace(config, subject_source=MaskedSource(source))


def _secret_extras(extra: dict[str, Any]) -> list[str]:
    # Extras that must never hold secrets are refused at validation; mask them anyway in case they do.
    names = ("client_secret", "private_key", "aws_secret_access_key", "aws_session_token")
    return [str(extra[name]) for name in names if extra.get(name)]
