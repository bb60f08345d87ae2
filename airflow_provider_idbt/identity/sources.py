"""Subject-token sources: where the worker's own identity comes from (token file, GCE metadata server, AWS)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import jwt

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError, CredentialRejected
from airflow_provider_idbt.identity import fields
from airflow_provider_idbt.identity.secret import Secret
from airflow_provider_idbt.identity.transport import HttpClient, RetryPolicy

log = logging.getLogger(__name__)

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
GCE_METADATA_URL = "http://metadata.google.internal/computeMetadata/v1"
# Projected token files named by well-known variables (IRSA / MWAA, Azure workload identity).
FILE_ENV_VARS = {"aws_web_identity": "AWS_WEB_IDENTITY_TOKEN_FILE", "azure_federated": "AZURE_FEDERATED_TOKEN_FILE"}
# aws_outbound: a JWT from sts:GetWebIdentityToken, asked with the worker's AWS credentials (identity/aws/outbound.py).
SOURCE_KINDS = ("file", "gce_metadata", *FILE_ENV_VARS, "aws_outbound")
# The aws_outbound source's own fields. None holds "token" or "secret": Airflow's masker would hide their values
# (an audience, "RS256") in every log line.
AWS_OUTBOUND_KEYS = frozenset(
    {
        "aws_audience",
        "aws_signing_algorithm",
        "aws_duration_seconds",
        "aws_region",
        "aws_sts_endpoint_url",
        "aws_request_tags",
    }
)
SOURCE_KEYS = frozenset(
    {
        "subject_token_source",
        "subject_token_file",
        "subject_token_audience",
        "subject_token_type",
        "gce_metadata_url",
        "subject_issuer",
        "subject_audience",
        *AWS_OUTBOUND_KEYS,
    }
)
# A subject token closer than this to its exp is treated as expired: it would die on the way to the IdP.
EXPIRY_MARGIN = timedelta(seconds=10)


@dataclass(frozen=True)
class SubjectToken:
    """One subject token as read from its source; the value is a :class:`Secret`."""

    value: Secret
    token_type: str
    origin: str  # where it came from, for messages: a path or a URL, never the token
    expires_at: datetime | None = None  # from an unverified look at exp: only used to decide to re-read

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at - EXPIRY_MARGIN <= (now or datetime.now(UTC))


def _unverified_expiry(token: str) -> datetime | None:
    """exp of a JWT without verifying it: the IdP verifies; we only look to avoid sending a dead token."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    return datetime.fromtimestamp(float(exp), UTC) if isinstance(exp, int | float) else None


class SubjectTokenSource(Protocol):
    """Gives the worker's current subject token; ``refresh=True`` bypasses any copy the source keeps."""

    @property
    def description(self) -> str: ...

    def get(self, *, refresh: bool = False) -> SubjectToken: ...


@dataclass
class FileTokenSource:
    """A projected token file (Kubernetes, IRSA, Azure workload identity), read on every call.

    The kubelet and the EKS/AKS webhooks replace the file atomically well before expiry, so reading it each time
    (a few hundred bytes) is how rotation is picked up; nothing is kept between calls.
    """

    conn_id: str
    path: str
    token_type: str = JWT_TOKEN_TYPE
    field_name: str = "subject_token_file"

    @property
    def description(self) -> str:
        return f"token file {self.path}"

    def get(self, *, refresh: bool = False) -> SubjectToken:
        try:
            value = Path(self.path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConnectionFieldError(
                self.conn_id,
                self.field_name,
                f"names {self.path}, which cannot be read ({type(exc).__name__})",
                "mount the projected service-account token there, or point the field at the file",
            ) from None
        if not value:
            raise CredentialRejected(
                f"connection `{self.conn_id}`: the token file {self.path} is empty; "
                "check the projected volume of the worker pod"
            )
        return SubjectToken(Secret(value, "subject token"), self.token_type, self.path, _unverified_expiry(value))


@dataclass
class GceMetadataTokenSource:
    """An ID token for ``audience`` from the GCE/GKE metadata server (Cloud Composer's service account).

    The token is kept until shortly before its exp (the metadata server itself caches too); ``refresh`` asks anew.
    """

    conn_id: str
    audience: str
    base_url: str = GCE_METADATA_URL
    timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    _cached: SubjectToken | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def description(self) -> str:
        return f"metadata server ID token for audience {self.audience}"

    @property
    def url(self) -> str:
        query = urlencode({"audience": self.audience, "format": "full"})
        return f"{self.base_url.rstrip('/')}/instance/service-accounts/default/identity?{query}"

    def get(self, *, refresh: bool = False) -> SubjectToken:
        with self._lock:
            if self._cached is not None and not refresh and not self._cached.expired(datetime.now(UTC) + EXPIRY_MARGIN):
                return self._cached
            client = HttpClient(self.conn_id, self.timeout, retry=self.retry, trust_env=False)
            response = client.send("GET", self.url, "metadata server", headers={"Metadata-Flavor": "Google"})
            value = response.text.strip()
            if response.status_code != 200 or not value:
                raise ConfigurationError(
                    f"connection `{self.conn_id}`: the metadata server answered HTTP {response.status_code} for an "
                    f"ID token with audience {self.audience}; run the worker with a service account "
                    "(Cloud Composer, GKE workload identity) or use a token file source"
                )
            secret = Secret(value, "subject token")
            self._cached = SubjectToken(secret, ID_TOKEN_TYPE, self.url, _unverified_expiry(value))
            return self._cached


def source_from_extra(
    conn_id: str,
    extra: Mapping[str, Any],
    *,
    timeout: float,
    default: str | None = None,
    default_audience: str | None = None,
) -> SubjectTokenSource | None:
    """The subject-token source a connection's extras describe, or None when they describe none.

    ``default_audience`` is the audience an `aws_outbound` token gets when `aws_audience` is not set: what the
    connection type's identity provider accepts by default (Google's provider URL, Entra's federation audience).
    """
    kind = fields.text(extra, "subject_token_source") or default
    path = fields.text(extra, "subject_token_file")
    if kind is None:
        if path is None:
            return None
        kind = "file"
    if kind not in SOURCE_KINDS:
        raise ConnectionFieldError(
            conn_id, "subject_token_source", f"is {kind!r}", f"set it to one of {', '.join(SOURCE_KINDS)}"
        )
    token_type = fields.text(extra, "subject_token_type") or JWT_TOKEN_TYPE
    if kind == "aws_outbound":
        # Imported here: the module is small, but only connections that use it should load it.
        from airflow_provider_idbt.identity.aws.outbound import AwsOutboundTokenSource

        return AwsOutboundTokenSource.from_extra(conn_id, extra, timeout=timeout, default_audience=default_audience)
    if kind == "gce_metadata":
        audience = fields.text(extra, "subject_token_audience")
        if audience is None:
            raise ConnectionFieldError(
                conn_id,
                "subject_token_audience",
                "is missing",
                "set it to the audience the identity provider expects in the worker's ID token",
            )
        base_url = fields.text(extra, "gce_metadata_url") or GCE_METADATA_URL
        # The metadata server is plain http by design (link-local); only the scheme and host are checked.
        if not base_url.startswith("http://"):
            raise ConnectionFieldError(conn_id, "gce_metadata_url", "is not an http URL", "remove it")
        return GceMetadataTokenSource(conn_id, audience, base_url, timeout=timeout)
    if kind in FILE_ENV_VARS and path is None:
        variable = FILE_ENV_VARS[kind]
        path = os.environ.get(variable)
        if not path:
            raise ConnectionFieldError(
                conn_id,
                "subject_token_source",
                f"is {kind} but {variable} is not set on this worker",
                f"run the worker with that identity (it sets {variable}) or give subject_token_file",
            )
        return FileTokenSource(conn_id, path, token_type, field_name="subject_token_source")
    if path is None:
        raise ConnectionFieldError(
            conn_id, "subject_token_file", "is missing", "give the path of the projected service-account token file"
        )
    return FileTokenSource(conn_id, path, token_type)


def current_subject_token(source: SubjectTokenSource) -> SubjectToken:
    """The source's token, read again once if it has already expired (a rotation may be under way)."""
    token = source.get()
    if token.expired():
        log.info("the subject token from %s has expired; reading it again", source.description)
        token = source.get(refresh=True)
    if token.expired():
        assert token.expires_at is not None
        raise CredentialRejected(
            f"the subject token from {source.description} expired at "
            f"{token.expires_at.isoformat(timespec='seconds')} and was not renewed; check that the platform "
            "still refreshes it (kubelet token projection, metadata server, web identity webhook, AWS STS)"
        )
    return token
