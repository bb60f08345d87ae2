"""Subject-token sources and the connection extras that choose them (identity/sources.py)."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from airflow_provider_idbt.errors import ConnectionFieldError, CredentialRejected
from airflow_provider_idbt.identity.sources import (
    FileTokenSource,
    GceMetadataTokenSource,
    current_subject_token,
    source_from_extra,
)


def unsigned(exp: float) -> str:
    return jwt.encode({"sub": "w", "exp": int(exp)}, None, algorithm="none")


def test_file_is_stripped_and_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    written = unsigned(time.time() + 600)
    path.write_text(f"\n  {written}  \n")
    source = FileTokenSource("c", str(path))
    first = source.get()
    assert first.value.reveal() == written and not first.expired()
    assert "***" in repr(first.value) and first.value.reveal() not in repr(first)
    path.write_text(unsigned(time.time() + 900))
    assert source.get().value != first.value


def test_expired_file_token_is_refused_after_one_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(unsigned(time.time() - 60))
    with pytest.raises(CredentialRejected, match=r"expired at .* not renewed"):
        current_subject_token(FileTokenSource("c", str(path)))


def test_empty_or_missing_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(CredentialRejected, match="empty"):
        FileTokenSource("c", str(tmp_path / "empty")).get()
    with pytest.raises(ConnectionFieldError, match="subject_token_file"):
        FileTokenSource("c", str(tmp_path / "absent")).get()


def test_extras_choose_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert source_from_extra("c", {}, timeout=5) is None
    file_source = source_from_extra("c", {"subject_token_file": str(tmp_path / "t")}, timeout=5)
    assert isinstance(file_source, FileTokenSource)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "aws"))
    aws = source_from_extra("c", {"subject_token_source": "aws_web_identity"}, timeout=5)
    assert isinstance(aws, FileTokenSource) and aws.path == str(tmp_path / "aws")
    gce = source_from_extra("c", {"subject_token_source": "gce_metadata", "subject_token_audience": "x"}, timeout=5)
    assert isinstance(gce, GceMetadataTokenSource)
    assert gce.url.endswith("/instance/service-accounts/default/identity?audience=x&format=full")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"subject_token_source": "kerberos"}, "subject_token_source"),
        ({"subject_token_source": "gce_metadata"}, "subject_token_audience"),
        ({"subject_token_source": "file"}, "subject_token_file"),
        ({"subject_token_source": "azure_federated"}, "subject_token_source"),
    ],
)
def test_bad_source_extras(extra: dict[str, str], field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    with pytest.raises(ConnectionFieldError) as info:
        source_from_extra("c", extra, timeout=5)
    assert info.value.field == field
