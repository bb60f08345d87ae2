"""`idbt dev-idp`: run the development identity provider in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType

from airflow_provider_idbt.devidp.provider import (
    DEFAULT_AUDIENCE,
    DEFAULT_CLIENT,
    DEFAULT_LIFETIME,
    DevClient,
    DevIdentityProvider,
)

DEFAULT_PORT = 8765


def parse_client(value: str) -> DevClient:
    """ID:SECRET[:group1,group2] into a DevClient."""
    client_id, sep, rest = value.partition(":")
    secret, _, groups = rest.partition(":")
    if not client_id or not sep or not secret:
        raise argparse.ArgumentTypeError("expected ID:SECRET[:group1,group2]")
    return DevClient(client_id, secret, groups=tuple(g for g in groups.split(",") if g))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idbt dev-idp",
        description="Development OIDC identity provider (client_credentials, RS256). Every token it issues "
        "carries `idbt_dev: true`, which idbt refuses unless IDBT_ALLOW_DEV_IDP=1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"0 picks a free port ({DEFAULT_PORT})")
    parser.add_argument(
        "--client",
        action="append",
        type=parse_client,
        metavar="ID:SECRET[:GROUPS]",
        help=f"a client to accept, repeatable (default: the demo client `{DEFAULT_CLIENT.client_id}`)",
    )
    parser.add_argument(
        "--audience",
        action="append",
        metavar="AUD",
        help=f"an audience clients may request, repeatable; the first is the default ({DEFAULT_AUDIENCE})",
    )
    parser.add_argument(
        "--lifetime",
        type=int,
        default=int(DEFAULT_LIFETIME.total_seconds()),
        help="token lifetime in seconds",
    )
    parser.add_argument("--issuer-file", type=Path, help="write the issuer URL here once listening")
    return parser


def _write_atomically(path: Path, text: str) -> None:
    # Readers poll for this file; a rename means they never see it half-written.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.lifetime <= 0:
        print("idbt dev-idp: --lifetime must be positive", file=sys.stderr)
        return 2
    provider = DevIdentityProvider(
        args.client or [DEFAULT_CLIENT],
        host=args.host,
        port=args.port,
        token_lifetime=timedelta(seconds=args.lifetime),
        audiences=args.audience or [DEFAULT_AUDIENCE],
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            provider.start()
        except OSError as exc:
            print(f"idbt dev-idp: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        if args.issuer_file:
            _write_atomically(args.issuer_file, provider.issuer + "\n")
        # Secrets are not printed: they are the ones given with --client (or the documented demo default).
        print(f"idbt dev-idp: issuer {provider.issuer}", flush=True)
        print(
            f"idbt dev-idp: clients {', '.join(sorted(provider.clients))}; audiences "
            f"{', '.join(provider.audiences)}; tokens carry idbt_dev=true",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        provider.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
