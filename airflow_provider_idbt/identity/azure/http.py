"""The HTTP client msal uses for an `idbt_azure` connection: our transport, under msal's http_client interface."""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_idbt.identity.transport import HttpClient


class MsalHttpClient:
    """msal's ``http_client`` (``get``/``post``/``close``) over :class:`HttpClient`.

    Hand-written because msal's default ``requests.Session`` takes ``verify=`` at the session level, which
    ``REQUESTS_CA_BUNDLE`` silently overrides, and makes one attempt per call; this one pins the connection's CA
    bundle per request, applies its timeout, never follows redirects, and retries timeouts, 5xx and 429 (honouring
    Retry-After) like every other exchanger. msal only ever sees final answers, so its own throttling cache never
    holds a transient error.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> requests.Response:
        return self.http.send("GET", url, "Entra ID metadata", params=params, headers=headers)

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any) -> requests.Response:
        return self.http.send("POST", url, "Entra ID token endpoint", params=params, data=data, headers=headers)

    def close(self) -> None:
        """Nothing to close: every request has its own session."""

    def __repr__(self) -> str:
        return f"MsalHttpClient(conn_id={self.http.conn_id!r})"
