"""Contract tests of the artifact store, run against both backends.

``store`` is parametrized: a LocalStore in a tmp directory and an S3Store on a fresh bucket
of a real SeaweedFS S3 server on 127.0.0.1 (see s3_server.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from spiker.errors import SpikerError
from spiker.store import (
    ArtifactNotFound,
    ArtifactRef,
    ArtifactStore,
    ImmutableObjectError,
    IntegrityError,
    InvalidKeyError,
    LocalStore,
    S3Store,
    StoreConfigError,
    StoreUnavailable,
    artifact_key,
    open_store,
)
from spiker.store.s3 import META_SHA256


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """The store under test: each backend in turn."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    info = request.getfixturevalue("s3_server").make_bucket()
    return S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, secure=False, retries=1)


def corrupt(store: ArtifactStore, key: str, data: bytes) -> None:
    """Replace the bytes behind ``key`` without going through the store (its metadata is kept)."""
    if isinstance(store, LocalStore):
        path = store.root / key
        os.chmod(path, 0o644)
        path.write_bytes(data)
        return
    assert isinstance(store, S3Store)
    meta = store.client.stat_object(store.bucket, key).metadata
    store.client.put_object(store.bucket, key, io.BytesIO(data), len(data),
                            metadata={META_SHA256: meta[META_SHA256]})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("data", [b"", b"x", b"spiking neural networks\n" * 1000])
def test_put_get_bytes_round_trip(store: ArtifactStore, data: bytes) -> None:
    ref = store.put_bytes(data, kind="test")
    sha = hashlib.sha256(data).hexdigest()
    assert ref.sha256 == sha and ref.size == len(data)
    assert ref.key == f"artifacts/sha256/{sha[:2]}/{sha}" == artifact_key(sha)
    assert ref.bucket == store.bucket
    assert store.get_bytes(ref) == data
    assert store.exists(ref.key)
    assert ref.uri.startswith("file:///" if isinstance(store, LocalStore) else f"s3://{store.bucket}/")
    assert ref.uri.endswith(ref.key)


def test_put_get_file_round_trip_multipart(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(12 * 1024 * 1024 + 123)  # > 2 parts of 5 MiB: a multipart upload on S3
    src.write_bytes(data)
    ref = store.put_file(src, kind="checkpoint")
    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    out = store.get_file(ref, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == data
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.bin"]  # no temp file left
    assert store.get_bytes(ref) == data
    if isinstance(store, S3Store):
        etag = store.client.stat_object(store.bucket, ref.key).etag
        assert etag.endswith("-3"), f"expected a 3-part multipart upload, etag {etag}"
    # the same bytes through put_bytes give the same ref
    assert store.put_bytes(data) == ref


def test_put_is_idempotent(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = store.put_bytes(b"same content", kind="a")

    def no_write(*a: object, **k: object) -> None:
        raise AssertionError("second put of the same content must not write")

    monkeypatch.setattr(store, "_write", no_write)
    assert store.put_bytes(b"same content", kind="b") == ref
    assert store.list("artifacts/") == [ref.key]


def test_json_documents(store: ArtifactStore) -> None:
    doc = {"state": "running", "stages": ["train"], "accuracy": 0.5}
    ref = store.put_json("runs/r1/status.json", doc)
    assert ref.key == "runs/r1/status.json" and ref.size > 0
    assert store.get_json("runs/r1/status.json") == doc
    assert store.get_bytes(ref) == json.dumps(doc, sort_keys=True, indent=2).encode() + b"\n"
    assert store.ref_for("runs/r1/status.json") == ref


def test_artifact_ref_dict_round_trip(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"abc")
    d = json.loads(json.dumps(ref.to_dict()))
    assert set(d) == {"bucket", "key", "sha256", "size"}
    assert ArtifactRef.from_dict(d) == ref
    with pytest.raises(ValueError, match="sha256"):
        ArtifactRef.from_dict({**d, "sha256": "nothex"})
    with pytest.raises(ValueError, match="size"):
        ArtifactRef.from_dict({k: v for k, v in d.items() if k != "size"})


# ------------------------------------------------------------------------------------ immutability
def test_named_documents_are_immutable_unless_overwrite(store: ArtifactStore) -> None:
    store.put_json("runs/r1/spec.json", {"a": 1})
    store.put_json("runs/r1/spec.json", {"a": 1})  # identical: a no-op
    with pytest.raises(ImmutableObjectError, match="runs/r1/spec.json"):
        store.put_json("runs/r1/spec.json", {"a": 2})
    assert store.get_json("runs/r1/spec.json") == {"a": 1}
    store.put_json("runs/r1/spec.json", {"a": 2}, overwrite=True)
    assert store.get_json("runs/r1/spec.json") == {"a": 2}


def test_artifact_namespace_is_reserved(store: ArtifactStore) -> None:
    for key in (artifact_key("0" * 64), "artifacts/index.json"):
        with pytest.raises(InvalidKeyError, match="reserved"):
            store.put_json(key, {"x": 1}, overwrite=True)


def test_corrupt_artifact_is_not_overwritten_silently(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"original bytes")
    corrupt(store, ref.key, b"truncated")
    with pytest.raises(IntegrityError, match="content address"):
        store.put_bytes(b"original bytes")


# ------------------------------------------------------------------------------------ integrity
@pytest.mark.parametrize("bad", [b"original bytez", b"short", b"original bytes plus more"])
def test_checksum_mismatch_is_detected(store: ArtifactStore, tmp_path: Path, bad: bytes) -> None:
    ref = store.put_bytes(b"original bytes")
    corrupt(store, ref.key, bad)
    with pytest.raises(IntegrityError, match=ref.key):
        store.get_bytes(ref)
    dest = tmp_path / "dl" / "x.bin"
    with pytest.raises(IntegrityError):
        store.get_file(ref, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    with pytest.raises(IntegrityError):
        store.verify(ref)


def test_ref_with_wrong_sha_is_rejected(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"payload")
    forged = ArtifactRef(ref.bucket, ref.key, "f" * 64, ref.size)
    with pytest.raises(IntegrityError, match="sha256"):
        store.get_bytes(forged)


# ------------------------------------------------------------------------------------ listing, not found
def test_listing(store: ArtifactStore) -> None:
    assert store.list() == []
    store.put_json("runs/r1/status.json", {"s": 1})
    store.put_json("runs/r1/stages/train.json", {"s": 2})
    store.put_json("runs/r10/status.json", {"s": 3})
    ref = store.put_bytes(b"blob")
    assert store.list("runs/r1/") == ["runs/r1/stages/train.json", "runs/r1/status.json"]
    assert store.list("runs/r1") == ["runs/r1/stages/train.json", "runs/r1/status.json",
                                     "runs/r10/status.json"]
    assert store.list("artifacts/") == [ref.key]
    assert store.list() == sorted([ref.key, "runs/r1/stages/train.json", "runs/r1/status.json",
                                   "runs/r10/status.json"])
    assert store.list("nothing/") == []
    assert store.exists("runs/r1/status.json") and not store.exists("runs/r1/nope.json")
    assert not store.exists("runs/r1")  # a "directory" is not an object


def test_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    ref = ArtifactRef(store.bucket, artifact_key(sha), sha, 12)
    for call in (lambda: store.get_bytes(ref), lambda: store.get_file(ref, tmp_path / "f"),
                 lambda: store.get_json("runs/none/status.json"), lambda: store.presigned_url(ref),
                 lambda: store.ref_for(ref.key)):
        with pytest.raises(ArtifactNotFound) as ei:
            call()
        assert isinstance(ei.value, KeyError) and isinstance(ei.value, SpikerError)
        assert "no object at" in str(ei.value)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", "a/", ".hidden", "a/.tmp-x",
                                 "sp ace", "new\nline"])
def test_invalid_keys(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.put_json(key, {})
    with pytest.raises(InvalidKeyError):
        store.exists(key)


# ------------------------------------------------------------------------------------ URLs
def test_presigned_url_fetch(store: ArtifactStore) -> None:
    data = b"download me\x00\xff" * 100
    ref = store.put_bytes(data)
    url = store.presigned_url(ref, expires=60)
    assert url.startswith("file://" if isinstance(store, LocalStore) else "http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own loopback server
        assert resp.read() == data
    with pytest.raises(ValueError):
        store.presigned_url(ref, expires=0)


# ------------------------------------------------------------------------------------ failures
def test_store_down_is_unavailable() -> None:
    st = S3Store(f"127.0.0.1:{closed_port()}", "k", "secret-key", "spiker", secure=False, retries=0,
                 connect_timeout=1.0, region="us-east-1")
    ref = ArtifactRef("spiker", artifact_key("a" * 64), "a" * 64, 1)
    t0 = time.monotonic()
    for call in (lambda: st.put_bytes(b"x"), lambda: st.get_bytes(ref), lambda: st.exists("runs/x"),
                 lambda: st.list("runs/"), lambda: st.get_json("runs/x/s.json"), st.ensure_bucket):
        with pytest.raises(StoreUnavailable, match="unreachable"):
            call()
    assert time.monotonic() - t0 < 10


def test_bad_credentials_and_missing_bucket(s3_server) -> None:
    bad = S3Store(s3_server.endpoint, "wrong", "wrong-secret", s3_server.bucket, secure=False, retries=0)
    with pytest.raises(StoreConfigError, match="credentials"):
        bad.put_bytes(b"x")
    missing = S3Store(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "no-such-bucket-xyz",
                      secure=False, retries=0)
    with pytest.raises(StoreConfigError, match="does not exist"):
        missing.put_bytes(b"x")
    created = S3Store(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "created-on-demand",
                      secure=False, create_bucket=True)
    assert created.get_bytes(created.put_bytes(b"ok")) == b"ok"


def test_s3_json_checked_against_recorded_sha(s3_server) -> None:
    info = s3_server.make_bucket()
    st = S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, secure=False)
    st.put_json("runs/r/status.json", {"state": "done"})
    corrupt(st, "runs/r/status.json", b'{"state": "fake"}\n')
    with pytest.raises(IntegrityError, match="recorded"):
        st.get_json("runs/r/status.json")


def test_local_concurrent_create_has_one_winner(tmp_path: Path) -> None:
    st = LocalStore(tmp_path / "s", fsync=False)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            st.put_json("runs/race/spec.json", {"writer": i})
        except ImmutableObjectError as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 7
    assert st.list("runs/race/") == ["runs/race/spec.json"]


# ------------------------------------------------------------------------------------ open_store
def test_open_store_from_env(s3_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    st = open_store(tmp_path / "ignored")
    assert isinstance(st, S3Store) and st.bucket == s3_env.bucket and not st.secure
    assert st.get_bytes(st.put_bytes(b"via env")) == b"via env"

    monkeypatch.setenv("SPIKER_S3_SECURE", "maybe")
    with pytest.raises(StoreConfigError, match="SPIKER_S3_SECURE"):
        open_store()
    monkeypatch.setenv("SPIKER_S3_SECURE", "0")
    monkeypatch.delenv("SPIKER_S3_SECRET_KEY")
    with pytest.raises(StoreConfigError, match="SPIKER_S3_SECRET_KEY"):
        open_store()

    monkeypatch.delenv("SPIKER_S3_ENDPOINT")
    local = open_store(tmp_path / "root")
    assert isinstance(local, LocalStore) and local.root == (tmp_path / "root").resolve()
    monkeypatch.setenv("SPIKER_STORE_DIR", str(tmp_path / "envroot"))
    assert open_store().root == (tmp_path / "envroot").resolve()  # type: ignore[attr-defined]
    monkeypatch.delenv("SPIKER_STORE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert open_store().root == (tmp_path / "home" / ".spiker" / "store").resolve()  # type: ignore[attr-defined]


def test_endpoint_scheme_sets_tls() -> None:
    assert S3Store("https://s3.example.org", "a", "b", "bkt").secure
    assert not S3Store("http://127.0.0.1:9000", "a", "b", "bkt", secure=True).secure
    assert S3Store("minio:9000", "a", "b", "bkt").secure  # the SDK's default: TLS on
    with pytest.raises(StoreConfigError, match="endpoint"):
        S3Store("http://host:9000/path", "a", "b", "bkt")
    with pytest.raises(StoreConfigError, match="bucket"):
        S3Store("host:9000", "a", "b", "B!")
