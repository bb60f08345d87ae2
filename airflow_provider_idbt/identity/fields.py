"""Reading connection extras the same way for every connection type: text, lists, URLs, timeouts, groups."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_idbt.errors import ConfigurationError, ConnectionFieldError

Problem = Callable[[str, str], Exception]

# Keys of interactive flows: a scheduled task has no browser or user, so such a connection is a mistake.
INTERACTIVE_KEYS = frozenset(
    {
        "redirect_uri",
        "response_type",
        "code",
        "code_verifier",
        "code_challenge",
        "device_code",
        "username",
        "user_password",
        "refresh_token",
        "prompt",
        "login_hint",
        "authorization_endpoint",
        # msal's user flows: on-behalf-of, auth code and device flow state.
        "user_assertion",
        "auth_code_flow",
        "device_flow",
    }
)
# Interactive or user-delegated flows by name: msal's methods, azure-identity's credentials, OAuth grants.
# Refused wherever a connection names its flow, whatever the connection type.
INTERACTIVE_FLOWS = frozenset(
    {
        "acquire_token_interactive",
        "initiate_device_flow",
        "acquire_token_by_device_flow",
        "acquire_token_by_username_password",
        "acquire_token_by_authorization_code",
        "initiate_auth_code_flow",
        "acquire_token_by_auth_code_flow",
        "acquire_token_by_refresh_token",
        "acquire_token_on_behalf_of",
        "acquire_token_silent",
        "publicclientapplication",
        "interactivebrowsercredential",
        "devicecodecredential",
        "usernamepasswordcredential",
        "authorizationcodecredential",
        "onbehalfofcredential",
        "azureclicredential",
        "interactive",
        "device_code",
        "device_flow",
        "authorization_code",
        "username_password",
        "password",
        "refresh_token",
        "on_behalf_of",
        "urn:ietf:params:oauth:grant-type:device_code",
    }
)
FLOW_KEYS = ("grant_type", "flow", "auth_flow", "auth_type", "credential", "authentication")


log = logging.getLogger(__name__)


def is_loopback(hostname: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only places plain http cannot be read by others."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def checked_url(url: str, problem: Problem, *, allow_query: bool = False) -> str:
    """Return ``url`` if it is http(s) with a host and https unless on loopback; else call ``problem``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem("is not a URL", "give the full URL, starting with https://")
    if (parts.query and not allow_query) or parts.fragment:
        raise problem("has a query or fragment", "give the issuer URL without ?query or #fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise problem(
            "uses plain http on a non-loopback host",
            "use https (plain http is only allowed on 127.0.0.1, ::1 or localhost)",
        )
    return url


def text(extra: Mapping[str, Any], key: str) -> str | None:
    """A stripped text value; the connection form stores unset fields as empty strings or nulls."""
    value = extra.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


def words(conn_id: str, extra: Mapping[str, Any], key: str, *, separators: str = " ") -> tuple[str, ...]:
    """A list given as a JSON list or as one string (space- or comma-separated)."""
    value = extra.get(key)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        for sep in separators:
            value = value.replace(sep, " ")
        return tuple(value.split())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise ConnectionFieldError(conn_id, key, "is not text or a list of text", "give space-separated values")


def declared_groups(conn_id: str, extra: Mapping[str, Any]) -> tuple[str, ...]:
    """Groups declared on the connection, for identity providers whose tokens carry none (AWS, Google)."""
    return words(conn_id, extra, "groups", separators=", ")


def timeout(conn_id: str, extra: Mapping[str, Any], default: float = 10.0) -> float:
    value = extra.get("timeout", default)
    try:
        seconds = float(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds <= 300:
        raise ConnectionFieldError(conn_id, "timeout", f"is {value!r}", "give the HTTP timeout in seconds (0-300)")
    return seconds


def ca_bundle(conn_id: str, extra: Mapping[str, Any]) -> str | None:
    path = text(extra, "ca_bundle")
    if path is not None and not os.path.isfile(path):
        raise ConnectionFieldError(
            conn_id, "ca_bundle", "is not a readable file", "give the path of a PEM file with the IdP's CA"
        )
    return path


def refuse_interactive(conn_id: str, extra: Mapping[str, Any], flows: str) -> None:
    """Interactive sign-in needs a person; a connection that mentions one is refused, even mixed with ours."""
    interactive = sorted(INTERACTIVE_KEYS & set(extra))
    if interactive:
        raise ConnectionFieldError(
            conn_id,
            interactive[0],
            "belongs to an interactive sign-in flow",
            f"remove it: scheduled tasks use a workload flow ({flows}), never a user's sign-in",
        )
    for key in FLOW_KEYS:
        name = text(extra, key)
        if name is not None and name.lower().replace("-", "_") in INTERACTIVE_FLOWS:
            raise ConnectionFieldError(
                conn_id,
                key,
                f"names {name}, an interactive or user-delegated sign-in flow",
                f"use a workload flow ({flows}); a scheduled task has no user to sign in",
            )


def refuse_keys(conn_id: str, extra: Mapping[str, Any], names: tuple[str, ...], problem: str, fix: str) -> None:
    """Extras that would store a credential this connection type must never hold are refused by name."""
    for name in names:
        if name in extra:
            raise ConnectionFieldError(conn_id, name, problem, fix)


def refuse_login_password(conn_id: str, login: str | None, password: str | None, problem: str, fix: str) -> None:
    """A connection type that exchanges the worker's identity stores no login or password: refuse one by field."""
    refuse_keys(
        conn_id, {k: v for k, v in (("login", login), ("password", password)) if v}, ("login", "password"), problem, fix
    )


def warn_unknown(conn_id: str, extra: Mapping[str, Any], known: frozenset[str] | set[str]) -> None:
    """Unknown extras are kept working (Airflow adds its own) but named, since a typo would be silently ignored."""
    unknown = sorted(set(extra) - set(known))
    if unknown:
        log.warning("connection `%s`: ignoring unknown extra keys %s", conn_id, ", ".join(unknown))


# The characters Airflow accepts in a connection id (its own sanitize rule); anything else is a bad template.
CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$")


def checked_conn_id(value: object, argument: str = "identity_conn_id") -> str:
    """A (rendered) connection id, or a :class:`ConfigurationError` saying what it rendered to and what to check."""
    if isinstance(value, str) and CONN_ID.match(value):
        return value
    shown = repr(value) if not isinstance(value, str) else f"`{value}`" if value.strip() else "an empty string"
    raise ConfigurationError(
        f"{argument} is {shown}, which is not an Airflow connection id (letters, digits and _-.:/#!() only); "
        "if it is templated (e.g. idbt_{{ var.value.get('idbt_environment', 'dev') }}), check the Airflow "
        "Variable it reads (in the UI, or AIRFLOW_VAR_<NAME> in the deployment's environment)"
    )
