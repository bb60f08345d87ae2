"""Tests for identity/claims.py: tokens signed in the test, keys served by a JWKS server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from airflow_provider_idbt.errors import IdentityProviderUnavailable, TokenVerificationError
from airflow_provider_idbt.identity.claims import AccessTokenVerifier, VerificationPolicy
from tests.fixtures.identity_servers import free_port

ISSUER = "https://idp.test/tenant"
AUDIENCE = "warehouse-api"


class Key:
    def __init__(self, kid: str, private: Any, alg: str) -> None:
        self.kid, self.private, self.alg = kid, private, alg

    @classmethod
    def rsa(cls, kid: str) -> Key:
        return cls(kid, rsa.generate_private_key(65537, 2048), "RS256")

    @classmethod
    def ec(cls, kid: str) -> Key:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        return json.loads(algorithm.to_jwk(self.private.public_key())) | {"kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, kid: str | None = "default") -> str:
        headers = {"kid": self.kid if kid == "default" else kid} if kid is not None else {}
        if kid is None:
            return jwt.encode(claims, self.private, algorithm=alg or self.alg)
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


class JwksServer:
    """A real HTTP server publishing whatever keys the test puts in ``keys``; counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps({"keys": [key.jwk() for key in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.keys.append(Key.rsa("key-1"))
    yield server
    server.close()


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {
        "iss": ISSUER,
        "sub": "svc-dbt-prod",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=10),
        "azp": "dbt-prod-runner",
        "groups": ["analysts"],
        "roles": ["warehouse.reader", "analysts"],
        "email": "someone@example.com",
        "upn": "someone@example.com",
        "name": "Some One",
        "tid": "tenant-42",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def verifier(jwks: JwksServer, **policy: Any) -> AccessTokenVerifier:
    return AccessTokenVerifier(
        VerificationPolicy(issuer=ISSUER, **({"audience": (AUDIENCE,)} | policy)), jwks.uri, timeout=5
    )


def test_good_token_gives_identity_without_personal_claims(jwks: JwksServer) -> None:
    token = jwks.keys[0].sign(claims())
    identity = verifier(jwks).verify(token)
    assert identity.issuer == ISSUER
    assert identity.subject == "svc-dbt-prod"
    assert identity.principal == "dbt-prod-runner"
    assert identity.groups == ("analysts", "warehouse.reader")
    assert identity.audience == (AUDIENCE,)
    assert identity.attributes == {"tid": "tenant-42"}
    assert token not in repr(identity)
    assert "someone@example.com" not in repr(identity) and "Some One" not in repr(identity)
    assert abs((identity.expires_at - datetime.now(UTC)).total_seconds() - 600) < 5


def test_ec_key_and_client_id_principal(jwks: JwksServer) -> None:
    jwks.keys = [Key.ec("ec-1")]
    token = jwks.keys[0].sign(claims(azp=None, client_id="client-9", sub=None))
    identity = verifier(jwks).verify(token)
    # No sub in a client-credentials token: the client is the subject.
    assert identity.subject == identity.principal == "client-9"


def test_configurable_groups_claim_and_space_separated_values(jwks: JwksServer) -> None:
    token = jwks.keys[0].sign(claims(groups=None, roles=None, teams="etl finance"))
    assert verifier(jwks, groups_claim="teams").verify(token).groups == ("etl", "finance")


def test_expired_token_is_refused(jwks: JwksServer) -> None:
    now = datetime.now(UTC)
    token = jwks.keys[0].sign(claims(iat=now - timedelta(hours=1), nbf=None, exp=now - timedelta(minutes=5)))
    with pytest.raises(TokenVerificationError, match="expired") as info:
        verifier(jwks).verify(token)
    assert token not in str(info.value)


def test_small_clock_skew_is_tolerated(jwks: JwksServer) -> None:
    now = datetime.now(UTC)
    token = jwks.keys[0].sign(claims(exp=now - timedelta(seconds=10), iat=now + timedelta(seconds=10)))
    assert verifier(jwks).verify(token).subject == "svc-dbt-prod"


def test_not_yet_valid_token_is_refused(jwks: JwksServer) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(TokenVerificationError, match="not valid yet"):
        verifier(jwks).verify(jwks.keys[0].sign(claims(nbf=later)))


def test_wrong_audience_is_refused_and_no_audience_means_any(jwks: JwksServer) -> None:
    token = jwks.keys[0].sign(claims(aud="other-api"))
    with pytest.raises(TokenVerificationError, match="not for audience warehouse-api"):
        verifier(jwks).verify(token)
    assert verifier(jwks, audience=()).verify(token).audience == ("other-api",)


def test_wrong_issuer_is_refused(jwks: JwksServer) -> None:
    with pytest.raises(TokenVerificationError, match="not issued by"):
        verifier(jwks).verify(jwks.keys[0].sign(claims(iss="https://evil.test")))


def test_alg_none_is_refused_without_fetching_keys(jwks: JwksServer) -> None:
    token = jwt.encode(claims(), "", algorithm="none")
    with pytest.raises(TokenVerificationError, match=r"'none'.*not allowed"):
        verifier(jwks).verify(token)
    assert jwks.fetches == 0


def test_hs256_signed_with_the_public_key_is_refused(jwks: JwksServer) -> None:
    public_pem = (
        jwks.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    # The classic algorithm-confusion attack: HMAC keyed with the issuer's public key (pyjwt itself refuses to
    # make such a token, so it is put together by hand).
    token = _hs256_token(public_pem)
    with pytest.raises(TokenVerificationError, match=r"'HS256'.*not allowed"):
        verifier(jwks).verify(token)


def _hs256_token(secret: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    payload = b64(json.dumps({"iss": ISSUER, "sub": "x", "exp": 4102444800}).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_bad_signature_is_refused(jwks: JwksServer) -> None:
    impostor = Key.rsa("key-1")  # same kid, different key
    with pytest.raises(TokenVerificationError, match="signature"):
        verifier(jwks).verify(impostor.sign(claims()))


def test_rotated_key_is_fetched_once(jwks: JwksServer) -> None:
    v = verifier(jwks)
    v.verify(jwks.keys[0].sign(claims()))
    assert jwks.fetches == 1
    jwks.keys.insert(0, Key.rsa("key-2"))
    v.verify(jwks.keys[0].sign(claims()))
    assert jwks.fetches == 2
    v.verify(jwks.keys[0].sign(claims()))  # now cached
    assert jwks.fetches == 2


def test_unknown_kid_after_refetch_is_refused(jwks: JwksServer) -> None:
    with pytest.raises(TokenVerificationError, match="no signing key with kid 'ghost'"):
        verifier(jwks).verify(Key.rsa("ghost").sign(claims()))
    assert jwks.fetches == 2


def test_token_without_kid_uses_the_only_key(jwks: JwksServer) -> None:
    assert verifier(jwks).verify(jwks.keys[0].sign(claims(), kid=None)).subject == "svc-dbt-prod"


def test_opaque_token_is_refused(jwks: JwksServer) -> None:
    with pytest.raises(TokenVerificationError, match="not a JWT"):
        verifier(jwks).verify("opaque-reference-token-abc123")


def test_missing_exp_uses_fallback_or_fails(jwks: JwksServer) -> None:
    token = jwks.keys[0].sign(claims(exp=None))
    with pytest.raises(TokenVerificationError, match="no exp"):
        verifier(jwks).verify(token)
    fallback = datetime.now(UTC) + timedelta(minutes=3)
    assert verifier(jwks).verify(token, expires_at_fallback=fallback).expires_at == fallback


def test_unreachable_jwks_is_retryable() -> None:
    dead = AccessTokenVerifier(VerificationPolicy(issuer=ISSUER), f"http://127.0.0.1:{free_port()}/jwks", timeout=2)
    with pytest.raises(IdentityProviderUnavailable):
        dead.verify(Key.rsa("k").sign(claims()))
