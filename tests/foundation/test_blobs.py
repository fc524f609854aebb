"""The blob store, on a local folder and on S3 (moto's S3 server over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from core.blobs import BlobNotFound, BlobStore, blob_store
from core.embedded.process import free_port
from core.settings import Settings


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["file", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BlobStore:
    if request.param == "file":
        monkeypatch.setenv("BLOB_URL", f"file://{tmp_path / 'blobs'}")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="artifacts")
        monkeypatch.setenv("BLOB_URL", "s3://artifacts/pulsetrace")
        monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    return blob_store(Settings.from_env(tmp_path))


def test_round_trip_overwrite_and_delete(store: BlobStore) -> None:
    key = "org-1/release-2/static/js/app.min.js.map"
    store.put(key, b'{"version":3}', "application/json")
    assert store.exists(key)
    assert store.get(key) == b'{"version":3}'
    store.put(key, b"\x00\n\nbinary")
    assert store.get(key) == b"\x00\n\nbinary"
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.get(key)


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "", "a//b"])
def test_rejects_keys_that_escape_the_store(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put(key, b"x")


def test_unknown_scheme_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BLOB_URL", "ftp://example/x")
    with pytest.raises(ValueError, match="file:// or s3://"):
        blob_store(Settings.from_env(tmp_path))
