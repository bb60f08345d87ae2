"""Optional local verification of a subject token before it is exchanged: signature, issuer, audience, expiry.

The exchanging server verifies it again; checking here turns an opaque refusal ("InvalidIdentityToken") into a
message that names the claim that is wrong, and lets `idbt doctor` show what the worker's own token says.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_idbt.errors import ConnectionFieldError, CredentialRejected, TokenVerificationError
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.claims import AccessTokenVerifier, VerificationPolicy
from airflow_provider_idbt.identity.discovery import discover
from airflow_provider_idbt.identity.sources import SubjectToken, SubjectTokenSource, current_subject_token
from airflow_provider_idbt.identity.token import IdentityContext
from airflow_provider_idbt.identity.transport import HttpClient

log = logging.getLogger(__name__)

CHECK_KEYS = frozenset({"subject_issuer", "subject_audience"})


@dataclass(frozen=True)
class SubjectTokenCheck:
    """The issuer (and audience) the worker's subject token must have, verified against the issuer's JWKS."""

    issuer: str
    audience: tuple[str, ...]

    @classmethod
    def from_extra(
        cls, conn_id: str, extra: Mapping[str, Any], default_audience: str | None = None
    ) -> SubjectTokenCheck | None:
        issuer = fields.text(extra, "subject_issuer")
        if issuer is None:
            return None
        fields.checked_url(issuer, lambda p, f: ConnectionFieldError(conn_id, "subject_issuer", p, f))
        audience = fields.words(conn_id, extra, "subject_audience") or ((default_audience,) if default_audience else ())
        return cls(issuer, audience)

    def verify(self, token: SubjectToken, http: HttpClient) -> IdentityContext:
        metadata = discover(self.issuer, http, field="subject_issuer", token_endpoint_required=False)
        verifier = AccessTokenVerifier(
            VerificationPolicy(issuer=metadata.issuer, audience=self.audience),
            metadata.jwks_uri,
            ca_bundle=http.ca_bundle,
            timeout=http.timeout,
        )
        return verifier.verify(token.value.reveal())


def checked_subject_token(
    http: HttpClient, source: SubjectTokenSource, check: SubjectTokenCheck | None, *, refresh: bool = False
) -> SubjectToken:
    """The current subject token, re-read once when it is expired or fails the local check."""
    conn_id = http.conn_id
    try:
        token = source.get(refresh=True) if refresh else current_subject_token(source)
    except CredentialRejected as exc:
        raise CredentialRejected(f"connection `{conn_id}`: {exc}") from None
    if check is None:
        return token
    try:
        check.verify(token, http)
    except TokenVerificationError as first:
        fresh = source.get(refresh=True)
        if fresh.value == token.value:
            raise TokenVerificationError(
                f"connection `{conn_id}`: the subject token from {token.origin} failed verification: {first}"
            ) from None
        log.info("connection `%s`: subject token failed verification; checking a re-read one", conn_id)
        try:
            check.verify(fresh, http)
        except TokenVerificationError as second:
            raise TokenVerificationError(
                f"connection `{conn_id}`: the subject token from {fresh.origin} failed verification: {second}"
            ) from None
        token = fresh
    return token
