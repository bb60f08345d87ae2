"""google-auth's HTTP calls through our transport: one retry loop, the connection's endpoints, no proxy to metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from google.auth import transport

from airflow_provider_idbt.identity.google.config import GoogleEndpoints
from airflow_provider_idbt.identity.transport import HttpClient

# google-auth's compute_engine module has this root compiled in (from GCE_METADATA_HOST at import time); the
# connection's `gce_metadata_url` replaces it per connection.
BUILTIN_METADATA_ROOT = "http://metadata.google.internal/computeMetadata/v1"


class _Response(transport.Response):
    def __init__(self, response: requests.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class RoutedRequest(transport.Request):
    """A google-auth ``Request`` that sends every call through :class:`HttpClient`.

    Written here rather than using ``google.auth.transport.requests.Request`` because that one neither retries
    (STS and IAM Credentials calls get no retry from google-auth) nor honours Retry-After, and it cannot move
    the metadata server; this keeps one retry policy, one timeout and one TLS set-up for every identity call.
    """

    def __init__(self, http: HttpClient, endpoints: GoogleEndpoints) -> None:
        self.http = http
        self.endpoints = endpoints
        # The metadata server is link-local and must never be reached through a proxy.
        self.metadata_http = HttpClient(http.conn_id, http.timeout, None, http.retry, trust_env=False)
        self.calls = 0

    def _route(self, url: str) -> tuple[str, HttpClient, str]:
        if url.startswith(BUILTIN_METADATA_ROOT):
            url = self.endpoints.metadata + url[len(BUILTIN_METADATA_ROOT) :]
        if url.startswith(self.endpoints.metadata):
            return url, self.metadata_http, "metadata server"
        if url.startswith(self.endpoints.sts):
            return url, self.http, "Google STS"
        return url, self.http, "IAM Credentials API"

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> _Response:
        # google-auth's own timeout is ignored: the connection's `timeout` applies to every identity call.
        target, client, what = self._route(url)
        self.calls += 1
        response = client.send(method, target, what, data=body, headers=dict(headers or {}))
        return _Response(response)
