"""LocalStore: the embedded default backend, a directory with the same key layout as the S3 bucket."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from spiker.store.base import (
    _SHA_RE,
    ARTIFACT_PREFIX,
    CHUNK_SIZE,
    ArtifactRef,
    ArtifactStore,
    ObjectInfo,
    _expires_seconds,
    validate_key,
    validate_prefix,
)
from spiker.store.errors import ArtifactNotFound, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)


class LocalStore(ArtifactStore):
    """Objects are files under ``root``: key ``a/b/c`` is the file ``root/a/b/c``.

    Writes go to a hidden temp file in the target directory and are published atomically
    (``os.link`` for create-only, ``os.replace`` for overwrite), so readers never see partial
    objects and two writers of the same immutable key cannot both win. Artifact files are made
    read-only. The ref ``bucket`` is the absolute root directory.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"local store: cannot create directory {str(self.root)!r}: {e}") from e
        self.bucket = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def describe(self) -> str:
        return "local store"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def uri_for(self, key: str) -> str:
        """``file:///root/key``."""
        return self._path(key).as_uri()

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StoreError(f"local store: stat {key!r}: {e}") from e
        if not os.path.isfile(self._path(key)):
            return None
        name = key.rsplit("/", 1)[-1]
        sha = name if key.startswith(ARTIFACT_PREFIX) and _SHA_RE.fullmatch(name) else None
        return ObjectInfo(size=st.st_size, sha256=sha)

    def _write(self, key: str, source: BinaryIO, size: int, sha256: str, *, kind: str,
               content_type: str, overwrite: bool) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        except OSError as e:
            raise StoreError(f"local store: cannot write {key!r}: {e}") from e
        try:
            with os.fdopen(fd, "wb") as out:
                remaining = size
                while remaining:
                    chunk = source.read(min(CHUNK_SIZE, remaining))
                    if not chunk:
                        raise StoreError(f"{key}: source ended {remaining} bytes early")
                    out.write(chunk)
                    remaining -= len(chunk)
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            os.chmod(tmp, 0o444 if key.startswith(ARTIFACT_PREFIX) else 0o644)
            if overwrite:
                os.replace(tmp, dest)
            else:
                os.link(tmp, dest)  # FileExistsError if someone else got there first
        except OSError as e:
            if isinstance(e, FileExistsError):
                raise
            raise StoreError(f"local store: cannot write {key!r}: {e}") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @contextlib.contextmanager
    def _open_read(self, bucket: str, key: str) -> Iterator[Iterator[bytes]]:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(key, self.bucket) from None
        except OSError as e:
            raise StoreError(f"local store: cannot read {key!r}: {e}") from e
        with f:
            yield iter(lambda: f.read(CHUNK_SIZE), b"")

    def _read_all(self, bucket: str, key: str, limit: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(key, self.bucket) from None
        except OSError as e:
            raise StoreError(f"local store: cannot read {key!r}: {e}") from e

    def list(self, prefix: str = "") -> list[str]:
        """All keys under ``prefix`` (plain string prefix, recursive, sorted); hidden temp files skipped."""
        validate_prefix(prefix)
        if prefix.endswith("/") or not prefix:
            base = prefix
        else:
            base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        top = self.root.joinpath(*base.rstrip("/").split("/")) if base else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                if name.startswith("."):
                    continue
                key = rel + name
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        """An exclusive lock on ``key`` (a hidden lock file beside it), for compare-and-swap."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.parent / f".{path.name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as e:
            raise StoreError(f"local store: cannot lock {key!r}: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            os.close(fd)

    def _delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            raise StoreError(f"local store: cannot delete {key!r}: {e}") from e
        return True

    def _modified(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StoreError(f"local store: cannot read {key!r}: {e}") from e
        return data, hashlib.sha256(data).hexdigest()

    def _write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        with self._locked(key):
            current = self._read_versioned(key)
            if (current is None) != (version is None) or (current is not None and current[1] != version):
                return None
            sha = hashlib.sha256(data).hexdigest()
            self._write(key, io.BytesIO(data), len(data), sha, kind="document", content_type="application/json",
                        overwrite=True)
            return sha

    def presigned_url(self, ref: ArtifactRef, expires: int | float | timedelta = 3600) -> str:
        """The ``file://`` URI of the object (local files need no signature; ``expires`` is checked only)."""
        _expires_seconds(expires)
        if self._stat(ref.key) is None:
            raise ArtifactNotFound(ref.key, self.bucket)
        return self.uri_for(ref.key)
