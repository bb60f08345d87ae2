"""FederatedToken and IdentityContext: a short-lived secret and the identity it proves, safe to log and repr."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn


def fingerprint(secret: str) -> str:
    """Return a short, non-reversible tag of a secret, to tell tokens apart in logs without revealing them."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IdentityContext:
    """Who a token says the caller is. Holds verified claims only, never the token itself."""

    issuer: str
    subject: str
    expires_at: datetime
    fingerprint: str
    principal: str | None = None
    groups: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    # Non-personal extra claims an exchanger chose to keep (e.g. tenant id); never emails or UPNs.
    attributes: Mapping[str, str] = field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        """The identity as it appears in events and XCom: JSON-ready, without any secret."""
        return {
            "issuer": self.issuer,
            "subject": self.subject,
            "principal": self.principal,
            "groups": list(self.groups),
            "audience": list(self.audience),
            "expires_at": self.expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            "fingerprint": self.fingerprint,
        }


class FederatedToken:
    """A short-lived access token and the identity it carries.

    The secret is reachable only through :meth:`reveal`; ``repr``/``str`` show the identity and a
    fingerprint, and pickling is refused so the token cannot end up in XCom, a DAG file cache or a
    serialized exception by accident.
    """

    __slots__ = ("_secret", "audience", "expires_at", "identity", "scope", "token_type")

    def __init__(
        self,
        secret: str,
        *,
        expires_at: datetime,
        identity: IdentityContext,
        audience: tuple[str, ...] = (),
        scope: tuple[str, ...] = (),
        token_type: str = "Bearer",
    ) -> None:
        if not secret:
            raise ValueError("FederatedToken needs a non-empty secret")
        if expires_at.tzinfo is None:
            raise ValueError("FederatedToken.expires_at must be timezone-aware")
        self._secret = secret
        self.expires_at = expires_at
        self.identity = identity
        self.audience = audience
        self.scope = scope
        self.token_type = token_type

    def reveal(self) -> str:
        """Return the secret. Call this only where the token is handed to the warehouse client."""
        return self._secret

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    def remaining(self, now: datetime | None = None) -> timedelta:
        return self.expires_at - (now or _utcnow())

    def covers(self, min_ttl: timedelta, now: datetime | None = None) -> bool:
        """True when the token stays valid for at least ``min_ttl`` from now."""
        return self.remaining(now) >= min_ttl

    def __repr__(self) -> str:
        return (
            f"FederatedToken(subject={self.identity.subject!r}, issuer={self.identity.issuer!r}, "
            f"fingerprint={self.fingerprint!r}, expires_at={self.expires_at.isoformat(timespec='seconds')!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("FederatedToken cannot be pickled: it holds a secret; pass token.identity instead")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FederatedToken):
            return NotImplemented
        return self._secret == other._secret

    def __hash__(self) -> int:
        return hash(self.fingerprint)
