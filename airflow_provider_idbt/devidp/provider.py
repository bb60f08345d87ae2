"""DevIdentityProvider: the dev IdP's clients, keys and token minting, served by uvicorn in a background thread."""

from __future__ import annotations

import hmac
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import jwt
import uvicorn

from airflow_provider_idbt.devidp.app import build_app
from airflow_provider_idbt.devidp.keys import SigningKey

DEFAULT_AUDIENCE = "idbt-dev"
DEFAULT_LIFETIME = timedelta(minutes=15)
_UNSPECIFIED_HOSTS = ("", "0.0.0.0", "::")  # noqa: S104 - only compared against, never bound here


@dataclass(frozen=True)
class DevClient:
    """An OAuth client the dev IdP accepts. ``audiences`` empty means the provider's audiences."""

    client_id: str
    client_secret: str = field(repr=False)
    subject: str | None = None
    groups: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()

    @property
    def sub(self) -> str:
        return self.subject or self.client_id


# The demo's default client; its secret is public by design, the dev IdP only runs on a developer's machine.
DEFAULT_CLIENT = DevClient("idbt-dev", "idbt-dev-secret", groups=("analysts",))


class DevIdentityProvider:
    """A small OIDC provider for development and tests. Every token it mints carries ``idbt_dev: true``.

    Binds to 127.0.0.1 unless told otherwise; ``port=0`` picks a free port. Use as a context manager or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        clients: Sequence[DevClient] = (DEFAULT_CLIENT,),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: timedelta | int = DEFAULT_LIFETIME,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    ) -> None:
        if not clients:
            raise ValueError("DevIdentityProvider needs at least one client")
        if not audiences:
            raise ValueError("DevIdentityProvider needs at least one audience")
        self.clients = {client.client_id: client for client in clients}
        self.host = host
        self.port = port
        self.token_lifetime = (
            token_lifetime if isinstance(token_lifetime, timedelta) else timedelta(seconds=token_lifetime)
        )
        self.audiences = tuple(audiences)
        self.issued_tokens: list[str] = []
        self._keys = [SigningKey.generate()]
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def default_audience(self) -> str:
        return self.audiences[0]

    @property
    def issuer(self) -> str:
        if self._server is None:
            raise RuntimeError("the dev identity provider is not started")
        host = "127.0.0.1" if self.host in _UNSPECIFIED_HOSTS else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def connection(self, client: DevClient, audience: str | None = None, host: str | None = None) -> dict[str, Any]:
        """The ``idbt_oidc`` connection (as Airflow takes it from ``AIRFLOW_CONN_*`` JSON) whose tasks get
        ``client``'s tokens from this provider; ``host`` overrides the issuer (an unreachable one, in tests)."""
        return {
            "conn_type": "idbt_oidc",
            "host": host or self.issuer,
            "login": client.client_id,
            "password": client.client_secret,
            "extra": {"audience": audience or self.allowed_audiences(client)[0]},
        }

    def allowed_audiences(self, client: DevClient) -> tuple[str, ...]:
        return client.audiences or self.audiences

    def authenticate(self, client_id: str, secret: str) -> DevClient | None:
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.client_secret.encode(), secret.encode()):
            return None
        return client

    def public_jwks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [key.public_jwk() for key in self._keys]

    def rotate_key(self, *, keep_previous: bool = True) -> str:
        """Sign with a new key from now on; return its kid. The old key stays published unless told not to."""
        new = SigningKey.generate()
        with self._lock:
            self._keys = [new, *self._keys[:1]] if keep_previous else [new]
        return new.kid

    def issue_token(
        self,
        client: DevClient,
        *,
        audience: str | None = None,
        scope: str | None = None,
        lifetime: timedelta | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        """Mint a signed access token for ``client`` and record it in :attr:`issued_tokens`."""
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client.sub,
            "aud": audience or self.default_audience,
            "iat": now,
            "nbf": now,
            "exp": now + (lifetime or self.token_lifetime),
            "jti": uuid.uuid4().hex,
            "azp": client.client_id,
            "client_id": client.client_id,
            "groups": list(client.groups),
            "idbt_dev": True,
        }
        if scope:
            claims["scope"] = scope
        claims |= extra_claims or {}
        with self._lock:
            key = self._keys[0]
            token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
            self.issued_tokens.append(token)
        return token

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a background thread; return once the port accepts connections."""
        if self._server is not None:
            raise RuntimeError("the dev identity provider is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket = sock
        sock.bind((self.host, self.port))
        # Binding before uvicorn starts turns port 0 into the real port, so the issuer is known up front.
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(self), log_config=None, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="idbt-dev-idp", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the dev identity provider did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.issuer if self._server is not None else "stopped"
        return f"DevIdentityProvider({state}, clients={sorted(self.clients)})"
