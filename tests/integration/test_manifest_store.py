"""manifest_store: manifests from file:// (real ObjectStoragePath) and s3:// (a real moto server) as cached copies."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from airflow_provider_idbt import manifest_store
from airflow_provider_idbt.errors import ConfigurationError, ManifestError, ManifestUnreachable
from airflow_provider_idbt.manifest_store import forget_checks, local_manifest
from tests.fixtures.aws_sts import MOTO_SERVER, _wait_for_port
from tests.fixtures.identity_servers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUCKET = "idbt-manifests"


def manifest_bytes(marker: str, padding: int = 0) -> bytes:
    return json.dumps({"metadata": {"marker": marker}, "nodes": {}, "padding": "x" * padding}).encode()


@pytest.fixture(autouse=True)
def store_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__IDBT__MANIFEST_CACHE_DIR", str(cache))
    monkeypatch.setenv("AIRFLOW__IDBT__MANIFEST_REFRESH_INTERVAL", "30")
    forget_checks()
    yield cache
    forget_checks()


def set_interval(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setenv("AIRFLOW__IDBT__MANIFEST_REFRESH_INTERVAL", str(seconds))


@dataclass
class MotoS3:
    """A moto server on 127.0.0.1 with its request log, and an Airflow aws connection that points at it."""

    endpoint: str
    log: Path
    conn_id: str
    process: subprocess.Popen[bytes]

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def put(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=body)  # type: ignore[attr-defined]

    def requests(self, method: str, key: str) -> int:
        # werkzeug logs a request when its headers go out, before the body, and stderr is line-buffered: every
        # request a call made is in the log by the time the call returns.
        line = f'"{method} /{BUCKET}/{key} HTTP/1.1"'
        return sum(line in entry for entry in self.log.read_text().splitlines())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def moto_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    if not MOTO_SERVER.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log = tmp_path / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    server = MotoS3(f"http://127.0.0.1:{port}", log, f"idbt_s3_{uuid.uuid4().hex[:8]}", process)
    try:
        _wait_for_port(port)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        extra = {"endpoint_url": server.endpoint, "region_name": "us-east-1"}
        connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{server.conn_id.upper()}", json.dumps(connection))
        server.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()


def test_local_path_is_used_in_place(tmp_path: Path, store_config: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "manifest.json").write_bytes(manifest_bytes("local"))
    assert local_manifest(target / "manifest.json") == target / "manifest.json"
    assert local_manifest(str(target)) == target / "manifest.json"
    assert not store_config.exists()  # nothing was copied


def test_file_uri_is_cached_with_its_companions_in_a_private_folder(tmp_path: Path, store_config: Path) -> None:
    bucket = tmp_path / "bucket" / "project_a"
    bucket.mkdir(parents=True)
    (bucket / "manifest.json").write_bytes(manifest_bytes("a"))
    (bucket / "partial_parse.msgpack").write_bytes(b"\x81\xa1a\x01")
    (bucket / "idbt_index.json").write_text('{"format": 1}')

    copy = local_manifest(f"file://{bucket}")
    assert copy.parent.parent == store_config
    assert copy.read_bytes() == manifest_bytes("a")
    assert (copy.parent / "partial_parse.msgpack").read_bytes() == b"\x81\xa1a\x01"
    assert (copy.parent / "idbt_index.json").read_text() == '{"format": 1}'
    assert stat.S_IMODE(store_config.stat().st_mode) == 0o700
    # The same folder named by its manifest is another URI, with its own cached copy.
    by_file = local_manifest(f"file://{bucket}/manifest.json")
    assert by_file != copy and by_file.read_bytes() == manifest_bytes("a")


def test_file_uri_is_checked_once_per_interval_then_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "manifest.json").write_bytes(manifest_bytes("v1"))
    (bucket / "partial_parse.msgpack").write_bytes(b"v1")
    uri = f"file://{bucket}/"
    copy = local_manifest(uri)
    (bucket / "manifest.json").write_bytes(manifest_bytes("v2"))
    (bucket / "partial_parse.msgpack").unlink()

    assert local_manifest(uri).read_bytes() == manifest_bytes("v1")  # this process checked it a moment ago
    forget_checks()  # as a new process: the cache's metadata file says the interval has not passed
    assert local_manifest(uri).read_bytes() == manifest_bytes("v1")

    set_interval(monkeypatch, 0)
    assert local_manifest(uri) == copy
    assert copy.read_bytes() == manifest_bytes("v2")
    assert not (copy.parent / "partial_parse.msgpack").exists()  # gone from storage, gone from the cache


def test_missing_manifest_is_a_clear_permanent_error(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/nowhere/"
    with pytest.raises(ManifestError) as caught:
        local_manifest(uri)
    assert not caught.value.retryable
    assert f"{tmp_path}/nowhere/manifest.json" in str(caught.value)
    assert "idbt prepare" in str(caught.value) and "target/" in str(caught.value)


def test_s3_downloads_once_per_change_and_never_within_the_interval(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.put("prod/manifest.json", manifest_bytes("v1"))
    moto_s3.put("prod/partial_parse.msgpack", b"pp-v1")
    uri = f"s3://{BUCKET}/prod/"

    copy = local_manifest(uri, conn_id=moto_s3.conn_id)
    assert copy.read_bytes() == manifest_bytes("v1")
    assert (copy.parent / "partial_parse.msgpack").read_bytes() == b"pp-v1"
    assert moto_s3.requests("GET", "prod/manifest.json") == 1
    heads = moto_s3.requests("HEAD", "prod/manifest.json")
    log_size = len(moto_s3.log.read_text().splitlines())

    # Many task groups in one file, then a re-parse in another process within the interval: no remote call.
    for _ in range(3):
        assert local_manifest(uri, conn_id=moto_s3.conn_id) == copy
    forget_checks()
    assert local_manifest(uri, conn_id=moto_s3.conn_id) == copy
    assert len(moto_s3.log.read_text().splitlines()) == log_size

    set_interval(monkeypatch, 0)
    assert local_manifest(uri, conn_id=moto_s3.conn_id).read_bytes() == manifest_bytes("v1")
    assert moto_s3.requests("HEAD", "prod/manifest.json") == heads + 1
    assert moto_s3.requests("GET", "prod/manifest.json") == 1  # checked, unchanged: not downloaded

    moto_s3.put("prod/manifest.json", manifest_bytes("v2"))
    assert local_manifest(uri, conn_id=moto_s3.conn_id).read_bytes() == manifest_bytes("v2")
    assert moto_s3.requests("GET", "prod/manifest.json") == 2
    assert moto_s3.requests("GET", "prod/partial_parse.msgpack") == 1  # its ETag did not change


def test_s3_outage_is_served_from_the_cache_with_a_warning(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    moto_s3.put("prod/manifest.json", manifest_bytes("v1"))
    uri = f"s3://{BUCKET}/prod/manifest.json"
    copy = local_manifest(uri, conn_id=moto_s3.conn_id)
    moto_s3.stop()
    set_interval(monkeypatch, 0)

    with caplog.at_level(logging.WARNING, logger=manifest_store.__name__):
        assert local_manifest(uri, conn_id=moto_s3.conn_id) == copy
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert uri in warning and "unreachable" in warning and "s ago" in warning
    assert copy.read_bytes() == manifest_bytes("v1")

    with pytest.raises(ManifestUnreachable) as caught:
        local_manifest(f"s3://{BUCKET}/never-cached/", conn_id=moto_s3.conn_id)
    assert caught.value.retryable
    assert f"s3://{BUCKET}/never-cached/" in str(caught.value) and "no cached copy" in str(caught.value)


def test_s3_missing_object_names_the_uri_and_the_fix(moto_s3: MotoS3) -> None:
    with pytest.raises(ManifestError) as caught:
        local_manifest(f"s3://{BUCKET}/staging/", conn_id=moto_s3.conn_id)
    assert not caught.value.retryable
    message = str(caught.value)
    assert f"s3://{BUCKET}/staging/manifest.json" in message
    assert "idbt prepare" in message and "target/" in message


REFRESH = """
import sys, time
from pathlib import Path
from airflow_provider_idbt.manifest_store import local_manifest
from airflow.sdk import ObjectStoragePath
ObjectStoragePath(sys.argv[1], conn_id=sys.argv[2]).fs  # import and connect before the start line
print("IDBT-READY", flush=True)
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
print("IDBT-PATH", local_manifest(sys.argv[1], conn_id=sys.argv[2]), flush=True)
"""


def test_s3_two_processes_refreshing_at_once_download_once_and_never_expose_half_a_file(
    moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = manifest_bytes("v1", 4_000_000), manifest_bytes("v2", 6_000_000)
    moto_s3.put("prod/manifest.json", old)
    uri = f"s3://{BUCKET}/prod/"
    copy = local_manifest(uri, conn_id=moto_s3.conn_id)
    moto_s3.put("prod/manifest.json", new)

    go = tmp_path / "go"
    env = {**os.environ, "AIRFLOW__IDBT__MANIFEST_REFRESH_INTERVAL": "0", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", REFRESH, uri, moto_s3.conn_id, str(go)]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:  # Airflow's own log lines go to stdout too
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and line.strip() != "IDBT-READY":
            pass
        assert line, "a refreshing process died before it was ready"

    seen: set[bytes] = set()
    torn: list[int] = []
    done = threading.Event()

    def read_while_refreshing() -> None:
        while not done.is_set():
            data = copy.read_bytes()
            if data not in (old, new):
                torn.append(len(data))
            seen.add(data)

    reader = threading.Thread(target=read_while_refreshing)
    reader.start()
    go.touch()
    try:
        outputs = [_printed_path(proc.communicate(timeout=120)[0]) for proc in procs]
    finally:
        done.set()
        reader.join()
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs == [str(copy), str(copy)]
    assert torn == []
    assert copy.read_bytes() == new
    assert seen <= {old, new}
    assert moto_s3.requests("GET", "prod/manifest.json") == 2  # the first download, then one for the change
    assert not [p.name for p in copy.parent.iterdir() if p.name.startswith(".manifest.json.")]  # no temp left


def _printed_path(stdout: str) -> str:
    return next(line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("IDBT-PATH "))


def test_refresh_interval_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    set_interval(monkeypatch, -1)
    with pytest.raises(ConfigurationError, match="manifest_refresh_interval"):
        local_manifest("file:///tmp/anything/")
    monkeypatch.setenv("AIRFLOW__IDBT__MANIFEST_REFRESH_INTERVAL", "soon")
    with pytest.raises(ConfigurationError, match="'soon'"):
        local_manifest("file:///tmp/anything/")
