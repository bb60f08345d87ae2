"""An `idbt_oidc` connection, validated: issuer, client authentication, grant, subject-token source, groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.job_binding import JOB_BINDING_KEYS, JobBinding
from airflow_provider_idbt.identity.oidc.client_auth import (
    ASSERTION_ALGORITHMS,
    ClientAuth,
    ClientSecretAuth,
    PrivateKeyJwtAuth,
)
from airflow_provider_idbt.identity.secret import Secret
from airflow_provider_idbt.identity.sources import SOURCE_KEYS, SubjectTokenSource, source_from_extra
from airflow_provider_idbt.identity.subject_check import SubjectTokenCheck

AUDIENCE_PARAMS = ("audience", "resource")
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANTS = {
    "client_credentials": "client_credentials",
    "token_exchange": "token_exchange",
    TOKEN_EXCHANGE_GRANT: "token_exchange",
}
CLIENT_AUTH_METHODS = ("client_secret", "private_key_jwt")
FLOWS = "client-credentials or RFC 8693 token exchange"
KNOWN_KEYS = frozenset(
    {
        "issuer",
        "client_id",
        "audience",
        "audience_param",
        "scope",
        "groups_claim",
        "groups",
        # Read by the operator's permission check (hooks/role_mapping.py), not by the exchanger.
        "role_mapping",
        # Read by the operator before any token is minted (identity/job_binding.py).
        *JOB_BINDING_KEYS,
        "timeout",
        "ca_bundle",
        "grant_type",
        "client_auth",
        "private_key_file",
        "key_id",
        "assertion_alg",
        *SOURCE_KEYS,
    }
)


@dataclass(frozen=True)
class OidcClientConfig:
    """One OIDC connection, validated. ``repr`` never shows the client secret or private key."""

    conn_id: str
    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    audience: str | None = None
    scope: tuple[str, ...] = ()
    groups_claim: str = "groups"
    timeout: float = 10.0
    ca_bundle: str | None = None
    # Auth0 and Okta read `audience`; RFC 8707 servers (ADFS, Entra v1, oidc-provider) read `resource`.
    audience_param: str = "audience"
    client_auth_method: str = "client_secret"
    private_key: str | None = field(default=None, repr=False)
    key_id: str | None = None
    assertion_alg: str = "RS256"
    grant: str = "client_credentials"
    subject_source: SubjectTokenSource | None = None
    subject_check: SubjectTokenCheck | None = None
    # For IdPs whose tokens carry no groups claim: used only when the token has none.
    groups: tuple[str, ...] = ()

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
    ) -> OidcClientConfig:
        """Validate Airflow connection fields; every problem is a :class:`ConnectionFieldError`."""

        def problem_in(name: str) -> fields.Problem:
            return lambda problem, fix: ConnectionFieldError(conn_id, name, problem, fix)

        fields.refuse_interactive(conn_id, extra, FLOWS)
        grant = GRANTS.get(fields.text(extra, "grant_type") or "client_credentials")
        if grant is None:
            raise ConnectionFieldError(
                conn_id,
                "grant_type",
                "must be client_credentials or token_exchange",
                f"remove it (client_credentials) or set it to {TOKEN_EXCHANGE_GRANT}",
            )
        if "client_secret" in extra or "private_key" in extra:
            name = "client_secret" if "client_secret" in extra else "private_key"
            raise ConnectionFieldError(
                conn_id,
                name,
                "must not be in extra",
                "move it to the password field, which Airflow encrypts and masks",
            )
        fields.warn_unknown(conn_id, extra, KNOWN_KEYS)
        JobBinding.from_extra(conn_id, extra)  # a bad binding is a bad connection, found by `idbt doctor` too

        issuer = fields.text(extra, "issuer") or (host or "").strip()
        if not issuer:
            raise ConnectionFieldError(
                conn_id, "host", "is missing", "set it to the issuer URL (the `iss` of the IdP's tokens)"
            )
        fields.checked_url(issuer, problem_in("host"))

        client_id = (login or "").strip() or fields.text(extra, "client_id")
        if not client_id:
            raise ConnectionFieldError(
                conn_id, "login", "is missing", "set it to the client id registered at the identity provider"
            )

        method = fields.text(extra, "client_auth") or "client_secret"
        if method not in CLIENT_AUTH_METHODS:
            raise ConnectionFieldError(
                conn_id, "client_auth", f"is {method!r}", "set it to client_secret or private_key_jwt"
            )
        private_key: str | None = None
        key_file = fields.text(extra, "private_key_file")
        if method == "private_key_jwt":
            private_key = password or None
            if private_key is None and key_file is not None:
                try:
                    private_key = Path(key_file).read_text(encoding="utf-8")
                except OSError as exc:
                    raise ConnectionFieldError(
                        conn_id, "private_key_file", f"cannot be read ({type(exc).__name__})", "mount the key there"
                    ) from None
            if not private_key:
                raise ConnectionFieldError(
                    conn_id,
                    "password",
                    "is missing",
                    "paste the client's PEM private key there (or give extra private_key_file)",
                )
            # Connection forms and env JSON often carry the PEM with literal \n.
            private_key = private_key.replace("\\n", "\n").strip()
        elif not password:
            raise ConnectionFieldError(
                conn_id, "password", "is missing", "set it to the client secret issued for this client"
            )
        assertion_alg = fields.text(extra, "assertion_alg") or "RS256"
        if assertion_alg not in ASSERTION_ALGORITHMS:
            raise ConnectionFieldError(
                conn_id, "assertion_alg", f"is {assertion_alg!r}", f"use one of {', '.join(ASSERTION_ALGORITHMS)}"
            )

        audience_param = fields.text(extra, "audience_param") or "audience"
        if audience_param not in AUDIENCE_PARAMS:
            raise ConnectionFieldError(
                conn_id, "audience_param", f"is {audience_param!r}", "set it to `audience` or `resource`"
            )
        timeout = fields.timeout(conn_id, extra)
        source = source_from_extra(conn_id, extra, timeout=timeout)
        if grant == "token_exchange" and source is None:
            raise ConnectionFieldError(
                conn_id,
                "subject_token_source",
                "is missing for the token-exchange grant",
                "set it to file (with subject_token_file), aws_web_identity, azure_federated, gce_metadata or "
                "aws_outbound",
            )
        if grant == "client_credentials" and source is not None:
            raise ConnectionFieldError(
                conn_id,
                "grant_type",
                "is client_credentials but a subject token source is set",
                f"set grant_type to {TOKEN_EXCHANGE_GRANT} or remove the subject_token_* fields",
            )

        return cls(
            conn_id=conn_id,
            issuer=issuer,
            client_id=client_id,
            client_secret=password if method == "client_secret" else None,
            audience=fields.text(extra, "audience"),
            scope=fields.words(conn_id, extra, "scope"),
            groups_claim=fields.text(extra, "groups_claim") or "groups",
            timeout=timeout,
            ca_bundle=fields.ca_bundle(conn_id, extra),
            audience_param=audience_param,
            client_auth_method=method,
            private_key=private_key,
            key_id=fields.text(extra, "key_id"),
            assertion_alg=assertion_alg,
            grant=grant,
            subject_source=source,
            subject_check=SubjectTokenCheck.from_extra(conn_id, extra),
            groups=fields.declared_groups(conn_id, extra),
        )

    @property
    def client_auth(self) -> ClientAuth:
        if self.client_auth_method == "private_key_jwt":
            assert self.private_key is not None
            return PrivateKeyJwtAuth(
                self.conn_id, self.client_id, Secret(self.private_key, "private key"), self.key_id, self.assertion_alg
            )
        assert self.client_secret is not None
        return ClientSecretAuth(self.client_id, Secret(self.client_secret, "client secret"))

    @property
    def cache_key(self) -> tuple[str, ...]:
        """What makes two tokens of this connection interchangeable (see identity.cache)."""
        key = (self.conn_id, self.issuer, self.audience or "", " ".join(self.scope), self.client_id)
        return key if self.subject_source is None else (*key, self.subject_source.description)
