"""The leak scan finds a secret in every form it is written in, and nothing where it is not."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.fixtures.leak_scan import leaked_forms, scan_files_for_secrets, secret_forms

# A token's shape (dots, dashes, underscores) and a password's (characters that URL and JSON encodings change).
TOKEN = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48) + "." + secrets.token_urlsafe(32)
PASSWORD = 'p@ss/w0rd+"quoted"\\ ' + secrets.token_hex(12)


def _written(secret: str) -> dict[str, bytes]:
    """How a leak would look on disk: the secret inside the text or blob that carries it."""
    basic = base64.b64encode(f"svc-dbt:{secret}".encode())  # an HTTP Basic header's value
    return {
        "plain": f"token={secret}\n".encode(),
        "query string": urlencode({"client_secret": secret}).encode(),
        "JSON record": json.dumps({"password": secret}).encode(),
        "HTTP Basic header": b"Authorization: Basic " + basic,
        "base64 at offset 1": base64.b64encode(b"x" + secret.encode()),
        "base64 at offset 2": base64.b64encode(b"xy" + secret.encode()),
        "base64url blob": base64.urlsafe_b64encode(b"{\"t\": \"" + secret.encode() + b"\"}"),
    }


@pytest.mark.parametrize("secret", [TOKEN, PASSWORD], ids=["token", "password"])
@pytest.mark.parametrize("how", list(_written(TOKEN)))
def test_every_written_form_is_found(tmp_path: Path, secret: str, how: str) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "attempt=1.log").write_bytes(b"some log line\n" + _written(secret)[how] + b"\nmore\n")
    with pytest.raises(AssertionError, match=r"secret #0 leaked into logs/attempt=1.log \(") as failure:
        scan_files_for_secrets(tmp_path, [secret])
    assert secret not in str(failure.value)  # the failure names the file and the form, never the value


def test_a_clean_tree_is_read_whole(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"file{index}.txt").write_text(f"fingerprint sha256:{index} and {secrets.token_urlsafe(64)}\n")
    assert scan_files_for_secrets(tmp_path, [TOKEN, PASSWORD, ""]) == 3


def test_forms_are_distinct_and_encodings_differ_from_the_plain_form() -> None:
    forms = secret_forms(PASSWORD)
    assert len(set(forms.values())) == len(forms)
    assert forms["URL-encoded"] == quote(PASSWORD, safe="").encode() and forms["JSON-escaped"] != forms["plain"]
    # A token needs no URL or JSON escaping: those forms are the plain one, listed once.
    token_forms = set(secret_forms(TOKEN))
    assert {"plain", "base64 (offset 0)", "base64 (offset 1)", "base64 (offset 2)"} <= token_forms
    assert "URL-encoded" not in secret_forms(TOKEN)


def test_leaked_forms_names_what_it_found() -> None:
    data = b"Authorization: Basic " + base64.b64encode(f"u:{TOKEN}".encode())
    found = leaked_forms(data, ["unrelated-" + secrets.token_hex(16), TOKEN])
    assert found and all(name.startswith("secret #1 (base64") for name in found)
    assert leaked_forms(b"nothing here", [TOKEN]) == []
