"""A run's files as its owner downloads them (``GetArtifact``, ``spiker get --download``, the web browser).

Authorisation is by the run's own record: a user names one of *their* runs and one of the names
that run's record lists (``artifacts``, plus the outputs of its finished stages); the store key
comes from the record, never from the caller, so no other object of the store can be reached.
"""

from __future__ import annotations

import mimetypes
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from spiker.store import ArtifactNotFound, ArtifactStore, StoreError
from spiker_api.errors import ErrorInfo, abort
from spiker_api.v1 import common_pb2, gateway_pb2
from spiker_gateway.records import RunNotFound
from spiker_gateway.run_files import stage_output_keys
from spiker_gateway.runs import RunManager

#: bytes per GetArtifact chunk (well under gRPC's 4 MiB message limit)
CHUNK_BYTES = 256 * 1024



class ArtifactNotInRun(KeyError):
    """The run lists no file of this name."""


def run_files(record: dict[str, Any]) -> dict[str, str]:
    """Name -> store key of every file a run record references (finished stages' outputs included)."""
    files = stage_output_keys(record.get("stages") or [])
    files.update(record.get("artifacts") or {})
    return files


def owned_files(manager: RunManager, user: str, run_id: str) -> dict[str, str]:
    """:func:`run_files` of ``user``'s run ``run_id`` (:class:`RunNotFound` for anyone else's)."""
    handle = manager.handle(user, run_id)
    with handle.cond:
        return run_files(handle.record)


def resolve(manager: RunManager, user: str, run_id: str, name: str) -> tuple[str, str]:
    """``(name, key)`` of a file of ``user``'s run, by its name or its store key."""
    files = owned_files(manager, user, run_id)
    if name in files:
        return name, files[name]
    for known, key in files.items():
        if key == name:
            return known, key
    raise ArtifactNotInRun(name)


def content_type(name: str) -> str:
    """The MIME type of a run file by its name (VHDL and other text as ``text/plain``)."""
    base = posixpath.basename(name)
    if name.endswith(("model", ".pt")):
        return "application/octet-stream"
    if base.endswith((".vhd", ".vhdl", ".txt", ".md", ".csv", ".v", ".log", ".tcl")):
        return "text/markdown" if base.endswith(".md") else "text/csv" if base.endswith(".csv") else "text/plain"
    if name.endswith(("record", "report", "sweep_json", "history", "optim_params")):
        return "application/json"
    return mimetypes.guess_type(base)[0] or "application/octet-stream"


class TempChunks:
    """The bytes of a verified temporary copy, in chunks; ``close()`` (also at the end of iteration)
    removes the copy, whether or not iteration ever started."""

    def __init__(self, tmp: tempfile.TemporaryDirectory, path: Path, chunk: int) -> None:
        self._tmp, self.path, self._chunk = tmp, path, chunk

    def __iter__(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as f:
                while data := f.read(self._chunk):
                    yield data
        finally:
            self.close()

    def close(self) -> None:
        self._tmp.cleanup()  # idempotent


def read_chunks(store: ArtifactStore, key: str, chunk: int = CHUNK_BYTES,
                ) -> tuple[common_pb2.ArtifactRef, TempChunks]:
    """The ref of ``key`` and its bytes in chunks, verified against the sha256 before the first chunk.

    The caller closes the chunks (iterating them to the end does too), so the temporary copy goes."""
    ref = store.ref_for(key)
    tmp = tempfile.TemporaryDirectory(prefix="spiker-get-")
    try:
        path = store.get_file(ref, Path(tmp.name) / "blob")  # verified; memory stays bounded
    except BaseException:
        tmp.cleanup()
        raise
    msg = common_pb2.ArtifactRef(bucket=ref.bucket, key=ref.key, sha256=ref.sha256, size=ref.size)
    return msg, TempChunks(tmp, path, chunk)


def serve(manager: RunManager, store: ArtifactStore, user: str, run_id: str, name: str,
          context: grpc.ServicerContext) -> Iterator[gateway_pb2.GetArtifactResponse]:
    """The ``GetArtifact`` stream: a header, then chunks; errors abort with a rich status."""
    try:
        name, key = resolve(manager, user, run_id, name)
        ref, chunks = read_chunks(store, key)
    except RunNotFound:
        abort(context, ErrorInfo("NOT_FOUND", "RUN_NOT_FOUND", f"no run {run_id}", "run_id"))
    except ArtifactNotInRun:
        abort(context, ErrorInfo("NOT_FOUND", "ARTIFACT_NOT_FOUND",
                                 f"run {run_id} has no file {name[:200]!r} (see the run's artifacts)", "name"))
    except ArtifactNotFound:
        abort(context, ErrorInfo("NOT_FOUND", "ARTIFACT_NOT_FOUND", f"{name} is gone from the store", "name"))
    except StoreError as exc:
        abort(context, ErrorInfo("UNAVAILABLE", "STORE_UNAVAILABLE", f"artifact store unavailable: {exc}"))
    try:  # a client that leaves after the header still gets the temporary copy removed
        yield gateway_pb2.GetArtifactResponse(header=gateway_pb2.ArtifactHeader(
            name=name, ref=ref, content_type=content_type(name)))
        for data in chunks:
            if not context.is_active():
                break
            yield gateway_pb2.GetArtifactResponse(chunk=data)
    finally:
        chunks.close()  # removes the temporary copy


__all__ = ["CHUNK_BYTES", "ArtifactNotInRun", "content_type", "owned_files", "read_chunks", "resolve",
           "run_files", "serve", "TempChunks"]
