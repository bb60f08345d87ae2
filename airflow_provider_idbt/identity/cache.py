"""Per-process token cache: reuse a token while it still covers the run, refresh it early otherwise."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.token import FederatedToken

# (connection id, audience/scope, subject/client, ...): everything that makes two tokens not interchangeable.
CacheKey = tuple[Hashable, ...]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _describe(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s"


class TokenCache:
    """Tokens held in memory only (never on disk), one lock per key.

    The per-key lock makes concurrent callers for the same key wait for one fetch instead of all asking the
    identity provider at once, while callers for other keys are not held up.
    """

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._tokens: dict[CacheKey, FederatedToken] = {}
        self._locks: dict[CacheKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, key: CacheKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: CacheKey, fetch: Callable[[], FederatedToken], min_ttl: timedelta) -> FederatedToken:
        """A token for ``key`` valid for at least ``min_ttl``; ``fetch`` is called when none is cached."""
        if min_ttl < timedelta(0):
            raise ValueError("min_ttl must not be negative")
        with self._lock_for(key):
            cached = self._tokens.get(key)
            if cached is not None and cached.covers(min_ttl, self._clock()):
                return cached
            token = fetch()
            remaining = token.remaining(self._clock())
            if remaining < min_ttl:
                self._tokens.pop(key, None)
                conn_id = key[0] if key else "?"
                raise ConfigurationError(
                    f"connection `{conn_id}`: the identity provider's token lifetime is shorter than the "
                    f"requested min_ttl (a fresh token is valid for {_describe(remaining)}, min_ttl is "
                    f"{_describe(min_ttl)}); lower min_ttl or raise the token lifetime at the identity "
                    "provider"
                )
            self._tokens[key] = token
            return token

    def invalidate(self, key: CacheKey) -> None:
        """Forget the token for ``key`` (e.g. after the warehouse rejected it)."""
        with self._guard:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._tokens)})"
