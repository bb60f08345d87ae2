"""Retry behaviour of the OIDC exchanger against a small real HTTP server on 127.0.0.1 that answers 429/503."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_idbt.errors import ConnectionFieldError, IdentityProviderUnavailable
from airflow_provider_idbt.identity.oidc.config import OidcClientConfig
from airflow_provider_idbt.identity.oidc.exchanger import OidcClientCredentialsExchanger
from airflow_provider_idbt.identity.transport import RetryPolicy

pytestmark = pytest.mark.integration


class Overloaded:
    """Answers the first ``failures`` requests with ``status`` and a Retry-After header, then 404."""

    def __init__(self, status: int, retry_after: str, failures: int) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                failing = outer.requests <= failures
                self.send_response(status if failing else 404)
                if failing:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory(clear_identity_caches: None) -> Iterator[Any]:
    servers: list[Overloaded] = []

    def make(status: int, retry_after: str, failures: int) -> Overloaded:
        servers.append(Overloaded(status, retry_after, failures))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def exchanger(issuer: str, retry: RetryPolicy) -> OidcClientCredentialsExchanger:
    config = OidcClientConfig.from_connection("busy_oidc", issuer, "client", "client-secret-xyz", {})
    return OidcClientCredentialsExchanger(config, retry=retry)


def test_retry_after_zero_is_honoured_instead_of_backoff(server_factory: Any) -> None:
    server = server_factory(503, "0", failures=2)
    started = time.monotonic()
    # After two 503s the third answer is a 404: the retries got through, and the 404 is a configuration error.
    with pytest.raises(ConnectionFieldError, match="no OpenID discovery document"):
        exchanger(server.issuer, RetryPolicy(attempts=4, backoff=2.0)).discover()
    assert server.requests == 3
    assert time.monotonic() - started < 1.5  # the 2 s + 4 s backoff was not used


def test_long_retry_after_stops_at_once(server_factory: Any) -> None:
    server = server_factory(429, "120", failures=10)
    started = time.monotonic()
    with pytest.raises(IdentityProviderUnavailable, match=r"after 1 attempt\(s\) \(HTTP 429\)") as info:
        exchanger(server.issuer, RetryPolicy(attempts=4, backoff=0.05, max_wait=30)).discover()
    assert info.value.retryable
    assert server.requests == 1
    assert time.monotonic() - started < 1.5


def test_http_date_retry_after(server_factory: Any) -> None:
    server = server_factory(503, "Wed, 21 Oct 2015 07:28:00 GMT", failures=10)  # in the past: retry at once
    with pytest.raises(IdentityProviderUnavailable, match=r"after 3 attempt\(s\)"):
        exchanger(server.issuer, RetryPolicy(attempts=3, backoff=5.0)).discover()
    assert server.requests == 3
