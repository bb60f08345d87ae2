"""HTTP to identity providers: one bounded-retry loop (timeouts, 5xx, 429 with Retry-After) for every exchanger."""

from __future__ import annotations

import email.utils
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from airflow_provider_idbt.errors import ConnectionFieldError, IdentityProviderUnavailable

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for transient failures; Airflow's own task retries take over after the last one."""

    attempts: int = 4
    backoff: float = 0.5  # first wait in seconds, doubled after each attempt
    max_wait: float = 30.0  # a longer Retry-After ends the retries at once

    def wait(self, attempt: int) -> float:
        return float(self.backoff * (2 ** (attempt - 1)))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


Attempt = Callable[[], tuple[Any, str | None, float | None]]


def with_retries(conn_id: str, what: str, policy: RetryPolicy, attempt_once: Attempt) -> Any:
    """Call ``attempt_once`` until it returns a result, at most ``policy.attempts`` times.

    ``attempt_once`` returns ``(result, None, None)`` when done, or ``(None, problem, retry_after)`` for a
    transient failure; the server's own Retry-After (even 0) beats our backoff.
    """
    problem = ""
    attempt = 0
    for attempt in range(1, policy.attempts + 1):
        result, failed, retry_after = attempt_once()
        if failed is None:
            return result
        problem = failed
        wait = policy.wait(attempt) if retry_after is None else retry_after
        if attempt == policy.attempts or wait > policy.max_wait:
            break
        log.info("connection `%s`: %s (%s); retrying in %.1fs", conn_id, what, problem, wait)
        time.sleep(wait)
    raise IdentityProviderUnavailable(
        f"connection `{conn_id}`: the {what} is unavailable after {attempt} attempt(s) ({problem}); "
        "the task will be retried"
    )


@dataclass(frozen=True)
class HttpClient:
    """requests with the connection's timeout, CA bundle and retry policy; never follows redirects."""

    conn_id: str
    timeout: float
    ca_bundle: str | None = None
    retry: RetryPolicy = RetryPolicy()
    # Metadata servers must never be reached through a proxy; everything else honours the environment.
    trust_env: bool = True

    def send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        def once() -> tuple[requests.Response | None, str | None, float | None]:
            try:
                with requests.Session() as session:
                    session.trust_env = self.trust_env
                    response = session.request(
                        method,
                        url,
                        timeout=self.timeout,
                        # A path wins over REQUESTS_CA_BUNDLE; True lets that variable apply.
                        verify=self.ca_bundle or _env_bundle(session) or True,
                        allow_redirects=False,
                        **kwargs,
                    )
            except requests.exceptions.SSLError as exc:
                raise ConnectionFieldError(
                    self.conn_id,
                    "ca_bundle",
                    f"does not let the worker verify TLS of {url} ({type(exc).__name__})",
                    "set it to a PEM file holding the identity provider's CA",
                ) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                return None, f"{type(exc).__name__}: cannot reach {urlsplit(url).netloc}", None
            if response.status_code in RETRYABLE_STATUS:
                return None, f"HTTP {response.status_code}", parse_retry_after(response.headers.get("Retry-After"))
            return response, None, None

        return with_retries(self.conn_id, f"{what} at {url}", self.retry, once)


def _env_bundle(session: requests.Session) -> str | None:
    # With trust_env off requests ignores REQUESTS_CA_BUNDLE too; keep honouring it for TLS.
    if session.trust_env:
        return None
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
