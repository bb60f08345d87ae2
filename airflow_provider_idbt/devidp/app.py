"""The dev identity provider's HTTP face: OIDC discovery, JWKS and a client-credentials token endpoint."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from airflow_provider_idbt.devidp.provider import DevIdentityProvider

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    """An RFC 6749 section 5.2 error response."""
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=_NO_STORE | headers
    )


class ClientAuthError(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 2.3.1: both parts are form-encoded inside the Basic header.
    return unquote_plus(client_id), unquote_plus(secret)


def client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str, bool]:
    """(client id, secret, used Basic) from exactly one of client_secret_basic and client_secret_post."""
    header = request.headers.get("authorization")
    basic = _basic_credentials(header) if header else None
    if header and basic is None:
        raise ClientAuthError(oauth_error(400, "invalid_request", "malformed Authorization header"))
    posted = form.get("client_secret")
    if basic and posted is not None:
        raise ClientAuthError(oauth_error(400, "invalid_request", "use one client authentication method, not two"))
    if basic:
        return basic[0], basic[1], True
    if posted is not None and form.get("client_id"):
        return form["client_id"], posted, False
    raise ClientAuthError(
        oauth_error(
            401,
            "invalid_client",
            "client authentication required",
            **{"WWW-Authenticate": 'Basic realm="idbt-dev-idp"'},
        )
    )


def build_app(provider: DevIdentityProvider) -> Starlette:
    """A Starlette app serving ``provider``; the provider holds clients, keys and the issued-token log."""

    async def discovery(request: Request) -> JSONResponse:
        issuer = provider.issuer
        return JSONResponse(
            {
                "issuer": issuer,
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "azp", "groups", "idbt_dev"],
            }
        )

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": provider.public_jwks()})

    async def token(request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return oauth_error(400, "invalid_request", "send the request as application/x-www-form-urlencoded")
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if any(len(values) > 1 for values in fields.values()):
            return oauth_error(400, "invalid_request", "a parameter was sent more than once")
        form = {name: values[0] for name, values in fields.items()}
        try:
            client_id, secret, used_basic = client_credentials(request, form)
        except ClientAuthError as exc:
            return exc.response
        client = provider.authenticate(client_id, secret)
        if client is None:
            challenge = {"WWW-Authenticate": 'Basic realm="idbt-dev-idp"'} if used_basic else {}
            return oauth_error(
                401, "invalid_client", "client authentication failed: unknown client or wrong secret", **challenge
            )
        grant_type = form.get("grant_type")
        if grant_type != "client_credentials":
            return oauth_error(
                400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported; use client_credentials"
            )
        audience = form.get("audience") or form.get("resource") or provider.default_audience
        if audience not in provider.allowed_audiences(client):
            return oauth_error(400, "invalid_target", f"client {client_id!r} may not request audience {audience!r}")
        scope = form.get("scope") or None
        access_token = provider.issue_token(client, audience=audience, scope=scope)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(provider.token_lifetime.total_seconds()),
        }
        if scope:
            body["scope"] = scope
        return JSONResponse(body, headers=_NO_STORE)

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/jwks", jwks, methods=["GET"]),
            Route("/token", token, methods=["POST"]),
        ]
    )
