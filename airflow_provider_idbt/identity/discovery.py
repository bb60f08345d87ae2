"""OIDC discovery: the issuer's endpoints and client-auth methods, fetched once per issuer per process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError
from airflow_provider_idbt.identity.fields import checked_url
from airflow_provider_idbt.identity.transport import HttpClient, json_object

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TTL_SECONDS = 3600.0


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document the token flows need."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...] = ()

    @property
    def auth_method(self) -> str:
        """The client-secret method: Basic is the OAuth default; post only when the IdP takes post but not Basic."""
        if "client_secret_post" in self.auth_methods and "client_secret_basic" not in self.auth_methods:
            return "client_secret_post"
        return "client_secret_basic"


_discovery: dict[tuple[str, str | None], tuple[float, ProviderMetadata]] = {}
_discovery_lock = threading.Lock()


def clear_discovery_cache() -> None:
    with _discovery_lock:
        _discovery.clear()


def discover(
    issuer: str, http: HttpClient, *, field: str = "host", token_endpoint_required: bool = True
) -> ProviderMetadata:
    """The issuer's discovery document (cached an hour); ``field`` is the connection field that named the issuer.

    An issuer that only signs tokens (a Kubernetes service-account issuer, an AWS account's outbound issuer)
    publishes no token endpoint: ``token_endpoint_required=False`` accepts that (``token_endpoint`` is then "").
    """
    conn = http.conn_id
    key = (issuer, http.ca_bundle)
    with _discovery_lock:
        cached = _discovery.get(key)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
        if cached[1].token_endpoint or not token_endpoint_required:
            return cached[1]
    url = issuer.rstrip("/") + DISCOVERY_PATH
    response = http.send("GET", url, "discovery document", headers={"Accept": "application/json"})
    doc = json_object(response)
    if response.status_code != 200 or not doc:
        raise ConnectionFieldError(
            conn,
            field,
            f"has no OpenID discovery document ({url} answered {response.status_code})",
            "set it to the issuer URL, the `iss` of the identity provider's tokens",
        )
    found = str(doc.get("issuer", ""))
    if found.rstrip("/") != issuer.rstrip("/"):
        raise ConnectionFieldError(
            conn, field, f"does not match the issuer {found!r} of its discovery document", f"set it to {found!r}"
        )
    endpoints = {}
    for name in ("token_endpoint", "jwks_uri"):
        value = str(doc.get(name) or "")

        def bad(problem: str, fix: str, name: str = name) -> ConfigurationError:
            return ConfigurationError(f"connection `{conn}`: the identity provider's {name} {problem}; {fix}")

        if not value and name == "token_endpoint" and not token_endpoint_required:
            endpoints[name] = ""
            continue
        if not value:
            raise bad("is missing from its discovery document", "the IdP must publish it")
        endpoints[name] = checked_url(value, bad)
    metadata = ProviderMetadata(
        issuer=found,
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        auth_methods=tuple(str(m) for m in doc.get("token_endpoint_auth_methods_supported") or ()),
        grant_types=tuple(str(g) for g in doc.get("grant_types_supported") or ()),
    )
    with _discovery_lock:
        _discovery[key] = (time.monotonic(), metadata)
    return metadata
