"""FederatedToken keeps its secret out of repr, str, pickle and equality-free places."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint

SECRET = "eyJhbGciOiJSUzI1NiJ9.secret-payload.signature"


def make_token(lifetime: timedelta = timedelta(minutes=30)) -> FederatedToken:
    expires = datetime.now(UTC) + lifetime
    identity = IdentityContext(
        issuer="https://idp.example.test",
        subject="svc-dbt",
        expires_at=expires,
        fingerprint=fingerprint(SECRET),
        principal="dbt-runner",
        groups=("analytics",),
        audience=("warehouse",),
    )
    return FederatedToken(SECRET, expires_at=expires, identity=identity, audience=("warehouse",))


def test_repr_and_str_show_identity_not_secret() -> None:
    token = make_token()
    for text in (repr(token), str(token), f"{token}", repr([token]), repr({"t": token})):
        assert SECRET not in text
        assert "svc-dbt" in text and token.fingerprint in text


def test_pickle_and_deepcopy_are_refused() -> None:
    token = make_token()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(token)
    with pytest.raises(TypeError):
        copy.deepcopy(token)


def test_reveal_returns_the_secret() -> None:
    assert make_token().reveal() == SECRET


def test_fingerprint_is_short_stable_and_not_the_secret() -> None:
    assert fingerprint(SECRET) == fingerprint(SECRET)
    assert fingerprint(SECRET) != fingerprint(SECRET + "x")
    assert fingerprint(SECRET).startswith("sha256:") and len(fingerprint(SECRET)) == len("sha256:") + 16
    assert SECRET not in fingerprint(SECRET)


def test_covers_min_ttl() -> None:
    token = make_token(timedelta(minutes=10))
    assert token.covers(timedelta(minutes=5))
    assert not token.covers(timedelta(minutes=15))
    assert timedelta(minutes=9) < token.remaining() <= timedelta(minutes=10)


def test_identity_event_has_no_secret() -> None:
    event = make_token().identity.as_event()
    assert SECRET not in repr(event)
    assert event["subject"] == "svc-dbt" and event["groups"] == ["analytics"]


def test_naive_expiry_and_empty_secret_are_rejected() -> None:
    identity = make_token().identity
    with pytest.raises(ValueError, match="timezone-aware"):
        FederatedToken("x", expires_at=datetime.now(), identity=identity)
    with pytest.raises(ValueError, match="non-empty"):
        FederatedToken("", expires_at=datetime.now(UTC), identity=identity)
