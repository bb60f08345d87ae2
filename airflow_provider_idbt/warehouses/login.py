"""What the dbt process logs in to the warehouse with: secrets by ``DBT_ENV_SECRET_*`` name, plain values beside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from airflow_provider_idbt.identity.token import FederatedToken, fingerprint

# dbt scrubs DBT_ENV_SECRET_* values from its logs and refuses them outside profiles.yml / packages.yml.
TOKEN_ENV_VAR = "DBT_ENV_SECRET_IDBT_TOKEN"
SECRET_PREFIX = "DBT_ENV_SECRET_"


@dataclass(frozen=True, repr=False)
class WarehouseLogin:
    """The secrets one task's dbt process logs in with, and the non-secret values its profile reads.

    ``secret_env`` holds ``DBT_ENV_SECRET_*`` names only: dbt scrubs those values from what it logs.
    ``repr`` shows names and fingerprints, never a value.
    """

    secret_env: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    # When the warehouse stops accepting the secrets (a database password's own expiry); None: the token's.
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        strays = [name for name in self.secret_env if not name.startswith(SECRET_PREFIX)]
        if strays:
            raise ValueError(f"warehouse login secrets must be named {SECRET_PREFIX}*: {', '.join(strays)}")
        if not all(self.secret_env.values()):
            raise ValueError("a warehouse login secret is empty")
        leaked = set(self.secret_env.values()) & set(self.env.values())
        if leaked:
            raise ValueError("a warehouse login secret is also given as a plain environment value")

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.secret_env.values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={fingerprint(value)}" for name, value in self.secret_env.items())
        return f"WarehouseLogin({shown}; env={sorted(self.env)})"

    __str__ = __repr__


def token_login(token: FederatedToken) -> WarehouseLogin:
    """The default: the task's token is the one secret, read by the profile as ``DBT_ENV_SECRET_IDBT_TOKEN``."""
    return WarehouseLogin({TOKEN_ENV_VAR: token.reveal()})
