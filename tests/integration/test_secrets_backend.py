"""Identity connections are read through Airflow's normal lookup, so a configured secrets backend serves them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_idbt.devidp.provider import DevIdentityProvider
from tests.fixtures.identity_servers import DEV_CLIENT_ID

pytestmark = pytest.mark.integration

PROBE = """
from airflow_provider_idbt.hooks import identity_hook_for
token = identity_hook_for("idbt_from_backend").get_token(min_ttl=60)
print("IDENTITY", token.identity.subject, token.identity.issuer, sorted(token.identity.groups))
"""


def test_connection_from_a_secrets_backend(dev_idp: DevIdentityProvider, tmp_path: Path) -> None:
    client = dev_idp.clients[DEV_CLIENT_ID]
    connections = tmp_path / "connections.json"
    connections.write_text(
        json.dumps(
            {
                "idbt_from_backend": {
                    "conn_type": "idbt_oidc",
                    "host": dev_idp.issuer,
                    "login": client.client_id,
                    "password": client.client_secret,
                    "extra": {"audience": "idbt-dev"},
                }
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
            "IDBT_ALLOW_DEV_IDP": "1",
        }
    )
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("IDENTITY "))
    subject, issuer, groups = line.removeprefix("IDENTITY ").split(" ", 2)
    assert issuer == dev_idp.issuer and subject
    assert "analysts" in groups
    for token in dev_idp.issued_tokens:
        assert token not in proc.stdout + proc.stderr
    assert client.client_secret not in proc.stdout + proc.stderr
