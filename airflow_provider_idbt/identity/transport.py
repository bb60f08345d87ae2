"""HTTP to identity providers: one bounded retry policy (timeouts, 5xx, 429 with Retry-After) for every exchanger."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
import tenacity
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

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
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), by urllib3's own parser."""
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value))
    except InvalidHeader:
        return None


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
    transient failure; the server's own Retry-After (even 0) beats our backoff, and a Retry-After longer than
    ``policy.max_wait`` ends the retries at once (Airflow's task retry comes later, with its own delay).

    tenacity runs the loop. urllib3's ``Retry`` (through requests' HTTPAdapter) is not enough: the AWS
    exchanger's calls go through botocore, not requests, and urllib3 sleeps for whatever Retry-After a server
    sends rather than giving up on a long one.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        _, _, retry_after = _outcome(state)
        return policy.wait(state.attempt_number) if retry_after is None else retry_after

    def stop(state: tenacity.RetryCallState) -> bool:
        return state.attempt_number >= policy.attempts or wait(state) > policy.max_wait

    def log_retry(state: tenacity.RetryCallState) -> None:
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("connection `%s`: %s (%s); retrying in %.1fs", conn_id, what, _outcome(state)[1], sleep)

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        raise IdentityProviderUnavailable(
            f"connection `{conn_id}`: the {what} is unavailable after {state.attempt_number} attempt(s) "
            f"({_outcome(state)[1]}); the task will be retried"
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda outcome: outcome[1] is not None),
        stop=stop,
        wait=wait,
        before_sleep=log_retry,
        retry_error_callback=give_up,
    )
    result, _, _ = retrying(attempt_once)
    return result


def _outcome(state: tenacity.RetryCallState) -> tuple[Any, str | None, float | None]:
    assert state.outcome is not None  # tenacity calls wait/stop/callbacks only after an attempt
    outcome: tuple[Any, str | None, float | None] = state.outcome.result()
    return outcome


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
