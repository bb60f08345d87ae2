"""`idbt doctor <conn_id>`: validate an identity connection end to end and say who it makes the task, never a token."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import TextIO

from airflow_provider_idbt.errors import IdbtError
from airflow_provider_idbt.identity.token import FederatedToken

EXIT_OK = 0
EXIT_PERMANENT = 1  # fix the connection or the identity provider's set-up
EXIT_TRANSIENT = 2  # the identity provider is unreachable or busy: try again


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def describe(conn_id: str, conn_type: str, token: FederatedToken, declared_groups: tuple[str, ...]) -> list[str]:
    """The report's lines: identity facts only (the fingerprint tells tokens apart without revealing one)."""
    identity = token.identity
    if not identity.groups:
        groups = "(none: declare them with the connection's `groups` extra)"
    elif declared_groups and identity.groups == declared_groups:
        groups = f"{', '.join(identity.groups)}  (declared on the connection)"
    else:
        groups = f"{', '.join(identity.groups)}  (from the token's claims)"
    lines = [
        f"connection `{conn_id}` ({conn_type}): OK",
        f"  issuer       {identity.issuer}",
        f"  subject      {identity.subject}",
        f"  principal    {identity.principal or '-'}",
        f"  groups       {groups}",
        f"  audience     {', '.join(identity.audience) or '-'}",
        f"  expires in   {_duration(token.remaining())} (at {token.expires_at.isoformat(timespec='seconds')})",
        f"  fingerprint  {identity.fingerprint}",
    ]
    lines += [f"  {key:<12} {value}" for key, value in sorted(identity.attributes.items())]
    return lines


def run_doctor(conn_id: str, *, min_ttl: int = 0, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Read the connection, fetch and verify a token through its hook, print the identity; return an exit code."""
    from airflow_provider_idbt.hooks import identity_hook_for

    # Outside a task, Airflow 3.3 reads connections from the metadata database only in a "server" process, as its
    # own `airflow connections get` and `connections test` mark themselves; a connection stored there (created
    # with `airflow connections add`) was otherwise "not defined" to `idbt doctor`.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    try:
        hook = identity_hook_for(conn_id)
        config = hook.get_config()
        source = getattr(config, "subject_source", None)
        if source is not None:
            print(f"connection `{conn_id}`: subject token from {source.description}", file=out)
        token = hook.get_token(min_ttl=timedelta(seconds=min_ttl))
    except IdbtError as error:
        print(f"idbt doctor: {type(error).__name__}: {error}", file=err)
        if error.retryable:
            print("idbt doctor: this looks transient; run the command again in a minute", file=err)
            return EXIT_TRANSIENT
        return EXIT_PERMANENT
    for line in describe(conn_id, hook.conn_type, token, tuple(getattr(config, "groups", ()))):
        print(line, file=out)
    return EXIT_OK
