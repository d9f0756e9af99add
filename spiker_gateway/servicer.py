"""``spiker.v1.GatewayService``: authenticate, validate, and hand runs to the RunManager."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
from grpc_status import rpc_status

from spiker.data.datasets import check_npz_headers
from spiker.errors import DataError, SpecError
from spiker.nir import HDF5_MAGIC
from spiker.store import ArtifactNotFound, ArtifactStore, StoreError, artifact_key
from spiker_api.errors import ErrorInfo, abort, rich_status
from spiker_api.v1 import gateway_pb2, gateway_pb2_grpc
from spiker_gateway.auth import TokenAuth, Unauthenticated
from spiker_gateway.fairness import QuotaExceeded
from spiker_gateway.records import RUN_ID_RE, RunNotFound, scrub_paths
from spiker_gateway.runs import RunManager
from spiker_gateway.stages import ref_msg
from spiker_gateway.validate import Limits, validate_spec

log = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
_FILENAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.(npz|nir)")
_ZIP_MAGIC = b"PK"
#: a NIR model file (HDF5) may be uploaded too, for a flow spec's model.artifact


def _clean(text: str) -> str:
    """Text that protobuf can encode (a spec may carry lone surrogates in its keys)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(context: grpc.ServicerContext, code: str, message: str, field: str = "", reason: str = "") -> None:
    abort(context, ErrorInfo(code, reason or code, _clean(scrub_paths(message)), _clean(field)))


def upload_key(user: str, sha256: str) -> str:
    """The store document that records ``user``'s upload of the dataset ``sha256`` (uploads are owned)."""
    return f"uploads/{user}/{sha256}.json"


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """The gateway's RPCs; every one starts with the bearer-token check."""

    def __init__(self, manager: RunManager, auth: TokenAuth, store: ArtifactStore, limits: Limits) -> None:
        self.manager = manager
        self.auth = auth
        self.store = store
        self.limits = limits

    def _run_id(self, context: grpc.ServicerContext, run_id: str) -> str:
        if not RUN_ID_RE.fullmatch(run_id):
            _fail(context, "INVALID_ARGUMENT", f"not a run id: {run_id[:80]!r}", "run_id", "INVALID_FIELD")
        return run_id

    def _not_found(self, context: grpc.ServicerContext, run_id: str) -> None:
        _fail(context, "NOT_FOUND", f"no run {run_id}", "run_id", "RUN_NOT_FOUND")

    def SubmitRun(self, request: gateway_pb2.SubmitRunRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> gateway_pb2.Run:
        user = self.auth.check(context)
        try:
            spec = validate_spec(request.spec, self.limits)
        except SpecError as exc:
            _fail(context, "INVALID_ARGUMENT", str(exc), exc.key, "SPEC_ERROR")
        try:
            self.manager.check_quota(user)
        except QuotaExceeded as exc:
            _fail(context, "RESOURCE_EXHAUSTED", exc.message, exc.field, "QUOTA_EXCEEDED")
        dataset_ref = self._upload_ref(context, user, spec.dataset_artifact, "dataset", "dataset.artifact",
                                       "UploadDataset first")
        model_ref = self._upload_ref(context, user, spec.model.artifact if spec.model is not None else None,
                                     "model", "model.artifact", "upload the .nir file first")
        try:
            return self.manager.submit(user, spec, no_cache=request.no_cache, dataset_ref=dataset_ref,
                                       model_ref=model_ref)
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        raise AssertionError("unreachable")

    def _upload_ref(self, context: grpc.ServicerContext, user: str, sha256: str | None, what: str, field: str,
                    hint: str) -> dict[str, Any] | None:
        """The ref of ``user``'s upload ``sha256`` (None when not given); INVALID_ARGUMENT when it is not
        theirs or not stored, UNAVAILABLE when the store is down."""
        if sha256 is None:
            return None
        try:
            if not self.store.exists(upload_key(user, sha256)):  # another user's upload
                raise ArtifactNotFound(sha256)
            return self.store.ref_for(artifact_key(sha256)).to_dict()
        except KeyError:
            _fail(context, "INVALID_ARGUMENT", f"no uploaded {what} with sha256 {sha256} ({hint})", field,
                  "ARTIFACT_NOT_FOUND")
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        raise AssertionError("unreachable")

    def GetRun(self, request: gateway_pb2.GetRunRequest, context: grpc.ServicerContext) -> gateway_pb2.Run:  # noqa: N802
        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        try:
            return self.manager.get(user, run_id)
        except RunNotFound:
            self._not_found(context, run_id)
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        raise AssertionError("unreachable")

    def ListRuns(self, request: gateway_pb2.ListRunsRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> gateway_pb2.ListRunsResponse:
        user = self.auth.check(context)
        try:
            runs, token = self.manager.list(user, max(0, request.limit), request.page_token)
        except ValueError as exc:
            _fail(context, "INVALID_ARGUMENT", str(exc), "page_token", "INVALID_FIELD")
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        return gateway_pb2.ListRunsResponse(runs=runs, next_page_token=token)

    def CancelRun(self, request: gateway_pb2.CancelRunRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> gateway_pb2.Run:
        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        try:
            return self.manager.cancel(user, run_id)
        except RunNotFound:
            self._not_found(context, run_id)
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        raise AssertionError("unreachable")

    async def WatchRun(self, request: gateway_pb2.WatchRunRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> AsyncIterator[gateway_pb2.RunEvent]:
        """A coroutine on the server's loop: an open stream holds no thread while it waits for events."""
        try:
            user = self.auth.user_of(context.invocation_metadata())
        except Unauthenticated as exc:
            log.info("rejected call from %s: %s", context.peer(), exc)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        run_id = request.run_id
        if not RUN_ID_RE.fullmatch(run_id):
            await _fail_async(context, "INVALID_ARGUMENT", f"not a run id: {run_id[:80]!r}", "run_id",
                              "INVALID_FIELD")
        try:
            handle = await asyncio.to_thread(self.manager.handle, user, run_id)  # may read the store
        except RunNotFound:
            await _fail_async(context, "NOT_FOUND", f"no run {run_id}", "run_id", "RUN_NOT_FOUND")
        except StoreError as exc:
            await _fail_async(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        async for event in self.manager.watch_async(handle):
            yield event

    def GetArtifact(self, request: gateway_pb2.GetArtifactRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> Iterator[gateway_pb2.GetArtifactResponse]:
        from spiker_gateway import artifacts

        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        yield from artifacts.serve(self.manager, self.store, user, run_id, request.name, context)

    def _stored_bytes(self, user: str, exclude: str = "") -> int:
        """Bytes of the uploads ``user`` owns (``exclude``: a sha256 not to count, e.g. the one re-uploaded)."""
        total = 0
        for key in self.store.list(f"uploads/{user}/"):
            sha = key.rsplit("/", 1)[-1].removesuffix(".json")
            if sha == exclude:
                continue
            try:
                total += self.store.ref_for(artifact_key(sha)).size
            except (KeyError, ValueError):  # removed by gc, or not an upload record
                continue
        return total

    def UploadDataset(self, request_iterator: Iterator[gateway_pb2.UploadDatasetRequest],  # noqa: N802
                      context: grpc.ServicerContext) -> gateway_pb2.UploadDatasetResponse:
        user = self.auth.check(context)
        limit = self.limits.max_upload_bytes
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            _fail(context, "INVALID_ARGUMENT", "the first message must be the header", "header", "INVALID_FIELD")
        name = first.header.filename
        if not _FILENAME_RE.fullmatch(name) or ".." in name:
            _fail(context, "INVALID_ARGUMENT", f"must be a plain file name ending in .npz or .nir (letters, digits, "
                  "'.', "
                  f"'_', '-'; no directories), got {name[:100]!r}", "header.filename", "INVALID_FIELD")
        if first.header.size < 0:
            _fail(context, "INVALID_ARGUMENT", f"size must be >= 0 (the file's byte count), got {first.header.size}",
                  "header.size", "INVALID_FIELD")
        if first.header.size > limit:
            _fail(context, "RESOURCE_EXHAUSTED", f"upload of {first.header.size} bytes exceeds the limit of "
                  f"{limit} bytes", "header.size", "UPLOAD_TOO_LARGE")
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as buf:
            size = 0
            for part in request_iterator:
                if part.WhichOneof("part") != "chunk":
                    _fail(context, "INVALID_ARGUMENT", "only chunks may follow the header", "chunk", "INVALID_FIELD")
                size += len(part.chunk)
                if size > limit:
                    _fail(context, "RESOURCE_EXHAUSTED", f"upload exceeds the limit of {limit} bytes", "chunk",
                          "UPLOAD_TOO_LARGE")
                buf.write(part.chunk)
            buf.seek(0)
            is_model = name.endswith(".nir")
            if is_model and buf.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
                _fail(context, "INVALID_ARGUMENT", "not a NIR file (HDF5)", "chunk", "DATA_ERROR")
            if is_model:
                buf.seek(0)
            elif buf.read(2) != _ZIP_MAGIC:
                _fail(context, "INVALID_ARGUMENT", "not an .npz file (a zip archive of arrays x and y)", "chunk",
                      "DATA_ERROR")
            buf.seek(0)
            try:  # a few compressed bytes can hold gigabytes: judge the arrays by their headers
                if not is_model:
                    check_npz_headers(buf, self.limits.max_dataset_bytes, label=name)
            except DataError as exc:
                _fail(context, "INVALID_ARGUMENT", str(exc), "chunk", "DATA_ERROR")
            buf.seek(0)
            data = buf.read()
        try:
            used = self._stored_bytes(user, exclude=hashlib.sha256(data).hexdigest())
            quota = self.limits.max_stored_bytes_per_user
            if used + len(data) > quota:
                _fail(context, "RESOURCE_EXHAUSTED", f"your uploads take {used} bytes; this one ({len(data)} bytes) "
                      f"would exceed your quota of {quota} bytes (`spiker gc` removes old ones)", "chunk",
                      "QUOTA_EXCEEDED")
            ref = self.store.put_bytes(data, kind="model" if is_model else "dataset",
                                       content_type="application/x-hdf5" if is_model else "application/zip")
            self.store.put_json(upload_key(user, ref.sha256), {"owner": user, "filename": name, "size": ref.size,
                                                               "sha256": ref.sha256, "uploaded_at": time.time()},
                                overwrite=True)
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        log.info("upload %s by %s: %d bytes -> %s", name, user, size, ref.key)
        return gateway_pb2.UploadDatasetResponse(artifact=ref_msg(ref.to_dict()), filename=name)


async def _fail_async(context: grpc.aio.ServicerContext, code: str, message: str, field: str = "",
                      reason: str = "") -> None:
    """:func:`_fail` for a coroutine handler (same status and details)."""
    status = rpc_status.to_status(rich_status(ErrorInfo(code, reason or code, _clean(scrub_paths(message)),
                                                        _clean(field))))
    await context.abort(status.code, status.details, status.trailing_metadata)


class _SyncContext:
    """The ``grpc.ServicerContext`` a plain (thread) handler expects, over grpc.aio's sync context.

    grpc.aio runs non-async handlers in its thread pool with a context that lacks ``is_active``
    and ``abort_with_status``; this adds them.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        self._done = threading.Event()
        context.add_callback(self._done.set)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def is_active(self) -> bool:
        return not self._done.is_set()

    def abort_with_status(self, status: grpc.Status) -> None:
        self._context.abort(status.code, status.details, status.trailing_metadata)


def _threaded(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with its context wrapped in :class:`_SyncContext` (generators stay generators)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(request: Any, context: Any) -> Iterator[Any]:
            yield from method(request, _SyncContext(context))
        return stream

    @functools.wraps(method)
    def unary(request: Any, context: Any) -> Any:
        return method(request, _SyncContext(context))
    return unary


class _AioAdapter:
    """The servicer as a grpc.aio server sees it: coroutine handlers as they are, the others threaded."""

    def __init__(self, servicer: GatewayServicer) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._servicer, name)
        if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
            return method
        return _threaded(method)


def add_to_server(servicer: GatewayServicer, server: grpc.aio.Server) -> None:
    """Add the gateway service to a grpc.aio server (plain handlers run in its migration thread pool)."""
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(_AioAdapter(servicer), server)


__all__ = ["SERVICE_NAME", "GatewayServicer", "add_to_server"]
