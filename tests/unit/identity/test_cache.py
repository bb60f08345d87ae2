"""Tests for identity/cache.py: reuse while a token covers min_ttl, early refresh, and one fetch per key."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_idbt.errors import ConfigurationError
from airflow_provider_idbt.identity.cache import TokenCache
from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
KEY = ("prod_oidc", "warehouse", "dbt-runner")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Issuer:
    """Stands in for an exchanger: hands out numbered tokens with a fixed lifetime."""

    def __init__(self, clock: Clock, lifetime: timedelta = timedelta(minutes=60), delay: float = 0.0) -> None:
        self.clock, self.lifetime, self.delay = clock, lifetime, delay
        self.calls = 0

    def __call__(self) -> FederatedToken:
        self.calls += 1
        time.sleep(self.delay)
        secret = f"token-{self.calls}"
        expires = self.clock() + self.lifetime
        identity = IdentityContext(
            issuer="https://idp", subject="svc", expires_at=expires, fingerprint=fingerprint(secret)
        )
        return FederatedToken(secret, expires_at=expires, identity=identity)


def test_reuses_a_token_that_covers_min_ttl() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock)
    first = cache.get(KEY, fetch, timedelta(minutes=10))
    clock.now += timedelta(minutes=30)
    assert cache.get(KEY, fetch, timedelta(minutes=10)) is first
    assert fetch.calls == 1


def test_refreshes_early_when_the_token_would_expire_during_the_run() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock)
    first = cache.get(KEY, fetch, timedelta(minutes=10))
    clock.now += timedelta(minutes=51)  # 9 minutes left, 10 needed
    second = cache.get(KEY, fetch, timedelta(minutes=10))
    assert second is not first and second.reveal() == "token-2"
    assert cache.get(KEY, fetch, timedelta(minutes=10)) is second


def test_a_larger_min_ttl_forces_a_refresh() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock)
    cache.get(KEY, fetch, timedelta(minutes=5))
    clock.now += timedelta(minutes=20)
    cache.get(KEY, fetch, timedelta(minutes=45))
    assert fetch.calls == 2


def test_token_lifetime_shorter_than_min_ttl_is_a_configuration_error() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock, lifetime=timedelta(minutes=5))
    with pytest.raises(ConfigurationError, match="token lifetime is shorter than the requested min_ttl") as info:
        cache.get(KEY, fetch, timedelta(minutes=10))
    assert "prod_oidc" in str(info.value) and "token-1" not in str(info.value)
    assert len(cache) == 0


def test_keys_are_independent() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock)
    a = cache.get(KEY, fetch, timedelta(0))
    b = cache.get(("prod_oidc", "other-audience", "dbt-runner"), fetch, timedelta(0))
    assert a != b and fetch.calls == 2


def test_invalidate_and_clear() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock)
    cache.get(KEY, fetch, timedelta(0))
    cache.invalidate(KEY)
    cache.get(KEY, fetch, timedelta(0))
    cache.clear()
    cache.get(KEY, fetch, timedelta(0))
    assert fetch.calls == 3


def test_negative_min_ttl_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenCache().get(KEY, Issuer(Clock()), timedelta(seconds=-1))


def test_concurrent_callers_of_one_key_share_one_fetch() -> None:
    clock = Clock()
    cache, fetch = TokenCache(clock), Issuer(clock, delay=0.2)
    results: list[FederatedToken] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(KEY, fetch, timedelta(0)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetch.calls == 1
    assert len({id(token) for token in results}) == 1


def test_a_slow_fetch_does_not_block_other_keys() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    release = threading.Event()

    def slow() -> FederatedToken:
        release.wait(5)
        return Issuer(clock)()

    thread = threading.Thread(target=cache.get, args=(KEY, slow, timedelta(0)))
    thread.start()
    started = time.monotonic()
    cache.get(("other",), Issuer(clock), timedelta(0))
    assert time.monotonic() - started < 1
    release.set()
    thread.join()


def test_repr_holds_no_token() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.get(KEY, Issuer(clock), timedelta(0))
    assert "token-1" not in repr(cache)
