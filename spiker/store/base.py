"""The artifact store interface: content-addressed immutable artifacts plus named JSON documents.

Key layout (identical on every backend, see docs/store.md)::

    artifacts/sha256/<first two hex digits>/<full sha256>   immutable, content-addressed blobs
    runs/<run-id>/...                                        run records (mutable JSON documents)

A backend implements a handful of primitives (``_stat``, ``_write``, ``_open_read``, ``list``,
``presigned_url``, ``uri_for``); the semantics (hashing, idempotence, immutability, verification
on read) live here so that every backend behaves the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from spiker.store.errors import (
    ArtifactNotFound,
    ImmutableObjectError,
    IntegrityError,
    InvalidKeyError,
    StoreError,
)

logger = logging.getLogger(__name__)

ARTIFACT_PREFIX = "artifacts/sha256/"
RUNS_PREFIX = "runs/"
CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 1024

_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=+@:,-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_KIND_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ArtifactRef:
    """Where an object lives and what it must hash to.

    ``bucket`` is the S3 bucket, or for the local backend the absolute directory of the store.
    ``sha256`` (64 lowercase hex digits) and ``size`` (bytes) are checked on every read.
    """

    bucket: str
    key: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not _SHA_RE.fullmatch(self.sha256):
            raise ValueError(f"ArtifactRef.sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.size < 0:
            raise ValueError(f"ArtifactRef.size must be >= 0, got {self.size}")

    @property
    def is_local(self) -> bool:
        """True when the ref points into a local-directory store (its bucket is an absolute path)."""
        return self.bucket.startswith("/")

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` for S3 refs, ``file:///dir/key`` for local refs."""
        if self.is_local:
            return Path(self.bucket, self.key).as_uri()
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the four fields (the shape of the proto ArtifactRef)."""
        return {"bucket": self.bucket, "key": self.key, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArtifactRef:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing or bad field."""
        try:
            return cls(bucket=str(d["bucket"]), key=str(d["key"]), sha256=str(d["sha256"]),
                       size=int(d["size"]))
        except KeyError as e:
            raise ValueError(f"ArtifactRef dict is missing field {e.args[0]!r}") from None


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about a stored object without reading it."""

    size: int
    sha256: str | None  # None when the backend has no record of it (then the bytes are hashed)


def artifact_key(sha256: str) -> str:
    """The content-addressed key of a blob: ``artifacts/sha256/<ab>/<sha256>``."""
    if not _SHA_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{ARTIFACT_PREFIX}{sha256[:2]}/{sha256}"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid store key, else raise :class:`InvalidKeyError`.

    Keys are relative, '/'-separated, with segments that start with a letter, digit or '_'
    and contain only ``A-Za-z0-9._=+@:,-`` (so never '.', '..' or hidden names).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(str(key), "empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(key[:40] + "...", f"longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidKeyError(key, "must be relative (no leading '/')")
    for seg in key.split("/"):
        if not seg:
            raise InvalidKeyError(key, "empty path segment")
        if not _SEGMENT_RE.fullmatch(seg):
            raise InvalidKeyError(
                key, f"segment {seg!r} must start with [A-Za-z0-9_] and use only A-Za-z0-9._=+@:,-")
    return key


def validate_prefix(prefix: str) -> str:
    """Validate a listing prefix: '' or a key, optionally ending in '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _expires_seconds(expires: int | float | timedelta) -> timedelta:
    td = expires if isinstance(expires, timedelta) else timedelta(seconds=float(expires))
    if td <= timedelta(0) or td > timedelta(days=7):
        raise ValueError(f"expires must be in (0 s, 7 days], got {td}")
    return td


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


class ArtifactStore(ABC):
    """Abstract artifact store: one interface, several backends (:class:`S3Store`, :class:`LocalStore`).

    Artifacts are put by content (``put_bytes``/``put_file``) and come back as an
    :class:`ArtifactRef`; reads verify sha256 and size. Named JSON documents
    (``put_json``/``get_json``) hold run records under ``runs/<run-id>/``.
    """

    #: bucket name (S3) or absolute root directory (local), copied into every ref
    bucket: str

    # ----------------------------------------------------------------- backend primitives
    @abstractmethod
    def _stat(self, key: str) -> ObjectInfo | None:
        """Size and recorded sha256 of ``key``, or None if absent."""

    @abstractmethod
    def _write(self, key: str, source: BinaryIO, size: int, sha256: str, *, kind: str,
               content_type: str, overwrite: bool) -> None:
        """Stream ``size`` bytes from ``source`` to ``key``.

        With ``overwrite=False`` a backend that can create atomically raises
        ``FileExistsError`` when the key appeared meanwhile; the caller re-checks.
        """

    @abstractmethod
    def _open_read(self, bucket: str, key: str) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """A context manager yielding an iterator over the object's bytes (chunks).

        Raises :class:`ArtifactNotFound` when absent.
        """

    def _read_all(self, bucket: str, key: str, limit: int) -> bytes:
        """The object's bytes, at most ``limit + 1`` of them (enough to tell it is too long).

        Backends override this with a single-buffer read; raises :class:`ArtifactNotFound`.
        """
        chunks: list[bytes] = []
        size = 0
        with self._open_read(bucket, key) as it:
            for chunk in it:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
        return b"".join(chunks)[: limit + 1]

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix`` (recursive, sorted)."""

    @abstractmethod
    def presigned_url(self, ref: ArtifactRef, expires: int | float | timedelta = 3600) -> str:
        """A URL from which anyone can GET the object (S3: presigned; local: ``file://``)."""

    @abstractmethod
    def uri_for(self, key: str) -> str:
        """The URI of ``key`` in this store (``s3://bucket/key`` or ``file:///dir/key``)."""

    def describe(self) -> str:
        """What the store is, for people (reports shown to clients): never a server path or a secret."""
        return type(self).__name__

    # ----------------------------------------------------------------- public API
    def exists(self, key: str) -> bool:
        """True if an object is stored under ``key``."""
        return self._stat(validate_key(key)) is not None

    def ref_for(self, key: str) -> ArtifactRef:
        """An :class:`ArtifactRef` for an existing object (hashing it if the backend has no record)."""
        validate_key(key)
        info = self._stat(key)
        if info is None:
            raise ArtifactNotFound(key, self.bucket)
        sha = info.sha256 or self._hash_stored(key)[0]
        return ArtifactRef(self.bucket, key, sha, info.size)

    def put_bytes(self, data: bytes | bytearray | memoryview, kind: str = "blob",
                  content_type: str = "application/octet-stream") -> ArtifactRef:
        """Store ``data`` under its content address and return its ref (a no-op if already there)."""
        _check_kind(kind)
        buf = data if isinstance(data, bytes) else bytes(memoryview(data).cast("B"))
        sha = hashlib.sha256(buf).hexdigest()
        key = artifact_key(sha)
        # BytesIO over a bytes object shares its buffer: no copy of a large artifact
        self._put(key, lambda: io.BytesIO(buf), len(buf), sha, kind=kind,
                  content_type=content_type, overwrite=False)
        return ArtifactRef(self.bucket, key, sha, len(buf))

    def put_file(self, path: str | os.PathLike[str], kind: str = "blob",
                 content_type: str = "application/octet-stream") -> ArtifactRef:
        """Store the file at ``path`` under its content address, streaming it (never fully in memory)."""
        _check_kind(kind)
        p = Path(path)
        try:
            st0 = p.stat()
            sha, size = _hash_file(p)
        except FileNotFoundError:
            raise FileNotFoundError(f"put_file: no such file {str(p)!r}") from None
        key = artifact_key(sha)

        def opener() -> BinaryIO:
            f = open(p, "rb")  # noqa: SIM115 - closed by _put
            st1 = os.fstat(f.fileno())
            if (st1.st_size, st1.st_mtime_ns) != (st0.st_size, st0.st_mtime_ns) or st1.st_size != size:
                f.close()
                raise StoreError(f"put_file: {str(p)!r} changed while it was being stored")
            return f

        self._put(key, opener, size, sha, kind=kind, content_type=content_type, overwrite=False)
        return ArtifactRef(self.bucket, key, sha, size)

    def get_bytes(self, ref: ArtifactRef) -> bytes:
        """The bytes of ``ref``, verified against its sha256 and size (else :class:`IntegrityError`).

        The object is read into one buffer (never more than ``ref.size + 1`` bytes) and hashed once.
        """
        data = self._read_all(self._bucket_of(ref), ref.key, ref.size)
        sha = hashlib.sha256(data).hexdigest() if len(data) == ref.size else ""  # size is checked first
        _verify(ref, sha, len(data))
        return data

    def get_file(self, ref: ArtifactRef, path: str | os.PathLike[str]) -> Path:
        """Download ``ref`` to ``path`` (atomically: a temp file renamed once verified); returns the path."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, self._open_read(self._bucket_of(ref), ref.key) as it:
                for chunk in it:
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if size > ref.size:
                        break
            _verify(ref, h.hexdigest(), size)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return dest

    def put_document(self, key: str, data: bytes, content_type: str = "application/octet-stream",
                     overwrite: bool = False) -> ArtifactRef:
        """Store ``data`` as a named document at ``key`` (a run's report, plot or status).

        With ``overwrite=False`` the document is immutable: writing identical content again is a
        no-op, different content raises :class:`ImmutableObjectError`. Run status documents pass
        ``overwrite=True``. Keys under ``artifacts/`` are reserved for content-addressed blobs.
        """
        validate_key(key)
        if key == "artifacts" or key.startswith("artifacts/"):
            raise InvalidKeyError(key, "'artifacts/' is reserved for put_bytes/put_file")
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        kind = "json" if content_type == "application/json" else "document"
        self._put(key, lambda: io.BytesIO(data), len(data), sha, kind=kind, content_type=content_type,
                  overwrite=overwrite)
        return ArtifactRef(self.bucket, key, sha, len(data))

    def put_json(self, key: str, obj: Any, overwrite: bool = False) -> ArtifactRef:
        """Store ``obj`` as a named JSON document (sorted keys, indented) at ``key`` (see put_document)."""
        try:
            data = (json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as e:
            raise StoreError(f"put_json({key!r}): object is not JSON-serialisable: {e}") from e
        return self.put_document(key, data, "application/json", overwrite=overwrite)

    def get_json(self, key: str) -> Any:
        """The JSON document at ``key`` (checked against its recorded sha256 where the backend has one)."""
        validate_key(key)
        # A document may be replaced between the stat and the read (a run record another gateway
        # rewrites): the bytes then differ from the stat's size/sha256. Read it again; only a
        # mismatch that persists is corruption.
        for _ in range(5):
            info = self._stat(key)
            if info is None:
                raise ArtifactNotFound(key, self.bucket)
            data = self._read_all(self.bucket, key, info.size)
            sha = hashlib.sha256(data).hexdigest() if info.sha256 is not None else None
            if len(data) == info.size and sha == info.sha256:
                break
        else:
            raise IntegrityError(key, f"sha256 {sha} (size {len(data)}) != recorded {info.sha256} "
                                      f"(size {info.size})")
        try:
            return json.loads(data)
        except ValueError as e:
            raise IntegrityError(key, f"not valid JSON: {e}") from e

    # ----------------------------------------------------------------- conditional documents
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """``(bytes, version)`` of the named document at ``key``, or None when absent.

        ``version`` is opaque (an S3 ETag, a content hash locally); pass it to :meth:`write_if`.
        """
        validate_key(key)
        return self._read_versioned(key)

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        """Write ``data`` at ``key`` only if the document is absent (``version=None``) or still at
        ``version`` (compare-and-swap); returns the new version, or None when another writer won.

        S3 uses conditional PUTs (``If-None-Match: *`` / ``If-Match``); the local store a lock file.
        Keys under ``artifacts/`` are reserved for content-addressed blobs.
        """
        validate_key(key)
        if key.startswith(ARTIFACT_PREFIX):
            raise InvalidKeyError(key, "'artifacts/' is reserved for put_bytes/put_file")
        return self._write_if(key, bytes(data), version)

    def delete(self, key: str) -> bool:
        """Remove the object at ``key`` (garbage collection only: artifacts are otherwise immutable).

        Returns False when there was none.
        """
        validate_key(key)
        return self._delete(key)

    def modified(self, key: str) -> float | None:
        """When the object at ``key`` was last written (POSIX seconds), or None when absent."""
        validate_key(key)
        return self._modified(key)

    def _delete(self, key: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__} cannot delete")

    def _modified(self, key: str) -> float | None:
        raise NotImplementedError(f"{type(self).__name__} has no modification times")

    def _read_versioned(self, key: str) -> tuple[bytes, str] | None:
        raise NotImplementedError(f"{type(self).__name__} has no conditional documents")

    def _write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} has no conditional documents")

    def verify(self, ref: ArtifactRef) -> None:
        """Read ``ref`` through and check its sha256/size without keeping the bytes."""
        sha, size = self._hash_stored(ref.key, self._bucket_of(ref))
        _verify(ref, sha, size)

    # ----------------------------------------------------------------- shared machinery
    def _bucket_of(self, ref: ArtifactRef) -> str:
        validate_key(ref.key)
        return self.bucket

    def _hash_stored(self, key: str, bucket: str | None = None) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        with self._open_read(bucket or self.bucket, key) as it:
            for chunk in it:
                h.update(chunk)
                size += len(chunk)
        return h.hexdigest(), size

    def _existing_matches(self, key: str, info: ObjectInfo, sha: str, size: int) -> bool:
        if info.size != size:
            return False
        stored = info.sha256 if info.sha256 is not None else self._hash_stored(key)[0]
        return stored == sha

    def _put(self, key: str, opener: Any, size: int, sha: str, *, kind: str, content_type: str,
             overwrite: bool) -> None:
        if not overwrite:
            info = self._stat(key)
            if info is not None:
                self._check_existing(key, info, sha, size)
                logger.debug("store: %s already present, put is a no-op", key)
                return
        src = opener()
        try:
            self._write(key, src, size, sha, kind=kind, content_type=content_type, overwrite=overwrite)
        except FileExistsError:  # lost a race against another writer: same checks as above
            info = self._stat(key)
            if info is None:
                raise StoreError(f"{key}: write raced with a delete") from None
            self._check_existing(key, info, sha, size)
        finally:
            src.close()
        logger.debug("store: wrote %s (%d bytes, kind=%s)", key, size, kind)

    def _check_existing(self, key: str, info: ObjectInfo, sha: str, size: int) -> None:
        if self._existing_matches(key, info, sha, size):
            return
        if key.startswith(ARTIFACT_PREFIX):
            raise IntegrityError(
                key, f"stored object (size {info.size}, sha256 {info.sha256}) does not match its "
                     "content address; it is corrupt and will not be overwritten silently")
        raise ImmutableObjectError(key, f"stored size {info.size}, new size {size}")


def _check_kind(kind: str) -> None:
    if not _KIND_RE.fullmatch(kind):
        raise ValueError(f"kind must match {_KIND_RE.pattern}, got {kind!r}")


def _verify(ref: ArtifactRef, sha: str, size: int) -> None:
    if size != ref.size:
        raise IntegrityError(ref.key, f"size {size if size <= ref.size else f'> {ref.size}'} "
                                      f"!= expected {ref.size} (object corrupt or ref wrong)")
    if sha != ref.sha256:
        raise IntegrityError(ref.key, f"sha256 {sha} != expected {ref.sha256} (object corrupt)")
