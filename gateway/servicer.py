"""``spiker.v1.GatewayService``: authenticate, validate, and hand runs to the RunManager."""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Iterator

import grpc

from gateway.auth import TokenAuth
from gateway.runs import RUN_ID_RE, RunManager, RunNotFound, scrub_paths
from gateway.stages import ref_msg
from gateway.validate import Limits, validate_spec
from services.common.errors import ErrorInfo, abort
from spiker.data.datasets import check_npz_headers
from spiker.errors import DataError, SpecError
from spiker.store import ArtifactNotFound, ArtifactStore, StoreError, artifact_key
from spiker_api.v1 import gateway_pb2, gateway_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
_FILENAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.npz")
_ZIP_MAGIC = b"PK"


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
        dataset_ref = None
        if spec.dataset_artifact is not None:
            try:
                if not self.store.exists(upload_key(user, spec.dataset_artifact)):  # another user's upload
                    raise ArtifactNotFound(spec.dataset_artifact)
                dataset_ref = self.store.ref_for(artifact_key(spec.dataset_artifact)).to_dict()
            except KeyError:
                _fail(context, "INVALID_ARGUMENT", f"no uploaded dataset with sha256 {spec.dataset_artifact} "
                      "(UploadDataset first)", "dataset.artifact", "ARTIFACT_NOT_FOUND")
            except StoreError as exc:
                _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        try:
            return self.manager.submit(user, spec, no_cache=request.no_cache, dataset_ref=dataset_ref)
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
        raise AssertionError("unreachable")

    def ListRuns(self, request: gateway_pb2.ListRunsRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> gateway_pb2.ListRunsResponse:
        user = self.auth.check(context)
        return gateway_pb2.ListRunsResponse(runs=self.manager.list(user, max(0, request.limit)))

    def CancelRun(self, request: gateway_pb2.CancelRunRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> gateway_pb2.Run:
        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        try:
            return self.manager.cancel(user, run_id)
        except RunNotFound:
            self._not_found(context, run_id)
        raise AssertionError("unreachable")

    def WatchRun(self, request: gateway_pb2.WatchRunRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> Iterator[gateway_pb2.RunEvent]:
        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        try:
            self.manager.handle(user, run_id)
        except RunNotFound:
            self._not_found(context, run_id)
        yield from self.manager.watch(user, run_id, context.is_active)

    def GetArtifact(self, request: gateway_pb2.GetArtifactRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> Iterator[gateway_pb2.GetArtifactResponse]:
        from gateway import artifacts

        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        yield from artifacts.serve(self.manager, self.store, user, run_id, request.name, context)

    def GetArtifact(self, request: gateway_pb2.GetArtifactRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> Iterator[gateway_pb2.GetArtifactResponse]:
        from gateway import artifacts

        user = self.auth.check(context)
        run_id = self._run_id(context, request.run_id)
        yield from artifacts.serve(self.manager, self.store, user, run_id, request.name, context)

    def UploadDataset(self, request_iterator: Iterator[gateway_pb2.UploadDatasetRequest],  # noqa: N802
                      context: grpc.ServicerContext) -> gateway_pb2.UploadDatasetResponse:
        user = self.auth.check(context)
        limit = self.limits.max_upload_bytes
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            _fail(context, "INVALID_ARGUMENT", "the first message must be the header", "header", "INVALID_FIELD")
        name = first.header.filename
        if not _FILENAME_RE.fullmatch(name) or ".." in name:
            _fail(context, "INVALID_ARGUMENT", f"must be a plain file name ending in .npz (letters, digits, '.', "
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
            if buf.read(2) != _ZIP_MAGIC:
                _fail(context, "INVALID_ARGUMENT", "not an .npz file (a zip archive of arrays x and y)", "chunk",
                      "DATA_ERROR")
            buf.seek(0)
            try:  # a few compressed bytes can hold gigabytes: judge the arrays by their headers
                check_npz_headers(buf, self.limits.max_dataset_bytes, label=name)
            except DataError as exc:
                _fail(context, "INVALID_ARGUMENT", str(exc), "chunk", "DATA_ERROR")
            buf.seek(0)
            data = buf.read()
        try:
            ref = self.store.put_bytes(data, kind="dataset", content_type="application/zip")
            self.store.put_json(upload_key(user, ref.sha256), {"owner": user, "filename": name, "size": ref.size,
                                                               "sha256": ref.sha256, "uploaded_at": time.time()},
                                overwrite=True)
        except StoreError as exc:
            _fail(context, "UNAVAILABLE", f"artifact store unavailable: {exc}", "", "STORE_UNAVAILABLE")
        log.info("upload %s by %s: %d bytes -> %s", name, user, size, ref.key)
        return gateway_pb2.UploadDatasetResponse(artifact=ref_msg(ref.to_dict()), filename=name)


def add_to_server(servicer: GatewayServicer, server: grpc.Server) -> None:
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)


__all__ = ["SERVICE_NAME", "GatewayServicer", "add_to_server"]
