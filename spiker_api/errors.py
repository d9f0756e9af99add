"""Map exceptions to gRPC status codes and error details (docs/services.md, "Errors").

User errors (``SpecError``, ``InfeasibleConfigError``, ``DataError``, bad refs) become
``INVALID_ARGUMENT`` naming the request field; store errors take the code the store suggests;
anything unexpected is ``INTERNAL`` and logged with its traceback. An :class:`ErrorInfo` is plain
data, so child processes and sweep workers can send it back to the servicer. On the wire an error
is the standard rich error model: a ``google.rpc.Status`` in ``grpc-status-details-bin`` with an
``ErrorInfo`` (reason, domain ``spiker.v1``, ``metadata.field``) and, when a field is at fault, a
``BadRequest.FieldViolation`` (grpcurl prints both; any gRPC language reads them).
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from spiker.errors import DataError, InfeasibleConfigError, SpecError, SpikerError, ToolError
from spiker.store import (
    ArtifactNotFound,
    ImmutableObjectError,
    IntegrityError,
    InvalidKeyError,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

#: trailing metadata key of the standard rich error model (a serialized ``google.rpc.Status``)
STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: ``google.rpc.ErrorInfo.domain`` of every error a Spiker server raises on purpose
ERROR_DOMAIN = "spiker.v1"


class FieldError(SpecError):
    """A request field is invalid; ``key`` is already the request's field path (never remapped).

    ``reason`` is ``SPEC_ERROR`` when the library judged the content, ``INVALID_FIELD`` when the
    message itself is malformed (missing field, bad ref).
    """

    def __init__(self, key: str, message: str, reason: str = "INVALID_FIELD") -> None:
        super().__init__(key, message)
        self.reason = reason


class Cancelled(Exception):
    """The call was cancelled or its deadline passed; the work was stopped."""


@dataclass
class ErrorInfo:
    """What went wrong, as plain data: status code name, reason, field and message.

    ``library_key`` is true when ``field`` is a library key (``layer_0.beta``, ``train.lr``) that
    the servicer still maps to its request's field path.
    """

    code: str
    reason: str
    message: str
    field: str = ""
    library_key: bool = False

    @property
    def status(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.code]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ErrorInfo:
        return cls(code=str(data["code"]), reason=str(data["reason"]), message=str(data["message"]),
                   field=str(data.get("field") or ""), library_key=bool(data.get("library_key")))

    def remapped(self, field_map: Mapping[str, str]) -> ErrorInfo:
        """A copy whose library key is translated to the request's field path."""
        if not self.library_key:
            return self
        return ErrorInfo(self.code, self.reason, self.message, remap_field(self.field, field_map), False)


class RemoteError(Exception):
    """An error raised in a child process or worker, carried back as :class:`ErrorInfo`."""

    def __init__(self, info: ErrorInfo) -> None:
        self.info = info
        super().__init__(info.message)


_LAYER_RE = re.compile(r"\blayer_(\d+)\b")


def remap_field(key: str, field_map: Mapping[str, str]) -> str:
    """Translate a library key to a request field path.

    ``layer_<i>`` becomes ``layers[<i>]`` and the first segment is looked up in ``field_map``
    (e.g. ``{"net": "net_dict", "train": "config"}``): ``net.layer_0.beta`` ->
    ``net_dict.layers[0].beta``. Unmapped keys are returned with only the layer rewrite.
    """
    key = _LAYER_RE.sub(r"layers[\1]", key)
    head, dot, rest = key.partition(".")
    if head in field_map:
        mapped = field_map[head]
        return f"{mapped}{dot}{rest}" if mapped else rest
    return key


def _resource_exhausted(exc: BaseException) -> str:
    """``OUT_OF_MEMORY`` / ``DISK_FULL`` when ``exc`` (or its cause) is one; retrying will not help."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "allocate memory" in str(exc)):
            return "OUT_OF_MEMORY"
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "DISK_FULL"
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return "DISK_FULL"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1  # type: ignore[assignment]
    return ""


def describe_error(exc: BaseException) -> ErrorInfo:
    """Classify an exception into an :class:`ErrorInfo` (never ``UNKNOWN``)."""
    field = str(getattr(exc, "spiker_field", "") or "")
    if isinstance(exc, RemoteError):
        return exc.info
    exhausted = _resource_exhausted(exc)
    if exhausted:
        return ErrorInfo("RESOURCE_EXHAUSTED", exhausted, f"{type(exc).__name__}: {exc}", field)
    if isinstance(exc, FieldError):
        return ErrorInfo("INVALID_ARGUMENT", exc.reason, str(exc), exc.key)
    if isinstance(exc, SpecError):
        return ErrorInfo("INVALID_ARGUMENT", "SPEC_ERROR", str(exc), field or exc.key, not field)
    if isinstance(exc, InfeasibleConfigError):
        return ErrorInfo("INVALID_ARGUMENT", "INFEASIBLE_CONFIG", str(exc), field or "optim_params")
    if isinstance(exc, DataError):
        return ErrorInfo("INVALID_ARGUMENT", "DATA_ERROR", str(exc), field or "dataset", not field)
    if isinstance(exc, ArtifactNotFound):
        return ErrorInfo("NOT_FOUND", "ARTIFACT_NOT_FOUND", str(exc), field)
    if isinstance(exc, StoreUnavailable):
        return ErrorInfo("UNAVAILABLE", "STORE_UNAVAILABLE", f"artifact store unavailable: {exc}", field)
    if isinstance(exc, IntegrityError):
        return ErrorInfo("DATA_LOSS", "INTEGRITY_ERROR", str(exc), field)
    if isinstance(exc, ImmutableObjectError):
        return ErrorInfo("ALREADY_EXISTS", "IMMUTABLE_OBJECT", str(exc), field)
    if isinstance(exc, InvalidKeyError):
        return ErrorInfo("INVALID_ARGUMENT", "INVALID_KEY", str(exc), field)
    if isinstance(exc, StoreConfigError):
        return ErrorInfo("FAILED_PRECONDITION", "STORE_CONFIG", str(exc), field)
    if isinstance(exc, ToolError):
        return ErrorInfo("FAILED_PRECONDITION", "TOOL_ERROR", str(exc), field)
    if isinstance(exc, StoreError):
        return ErrorInfo("UNAVAILABLE", "STORE_ERROR", str(exc), field)
    if isinstance(exc, SpikerError):
        return ErrorInfo("FAILED_PRECONDITION", "SPIKER_ERROR", str(exc), field)
    if isinstance(exc, Cancelled):
        return ErrorInfo("CANCELLED", "CANCELLED", str(exc) or "cancelled", field)
    log.error("unexpected error", exc_info=exc)
    return ErrorInfo("INTERNAL", "INTERNAL", f"{type(exc).__name__}: {exc}", field)


def rich_status(info: ErrorInfo) -> status_pb2.Status:
    """The standard ``google.rpc.Status`` of an error: an ``ErrorInfo`` (reason, domain, field) and,
    when a request field is at fault, a ``BadRequest`` with one ``FieldViolation``."""
    status = status_pb2.Status(code=info.status.value[0], message=info.message)
    metadata = {"field": info.field} if info.field else {}
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=info.reason, domain=ERROR_DOMAIN,
                                                          metadata=metadata))
    if info.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=info.field, description=info.message)
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    return status


def status_metadata(info: ErrorInfo) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying ``rich_status(info)`` (for servers that abort by themselves)."""
    return ((STATUS_DETAILS_KEY, rich_status(info).SerializeToString()),)


def abort(context: grpc.ServicerContext, info: ErrorInfo) -> None:
    """Abort the call with the error's status code, message and ``grpc-status-details-bin`` (raises)."""
    context.abort_with_status(rpc_status.to_status(rich_status(info)))


def error_detail(err: grpc.RpcError) -> dict[str, str]:
    """Client side: ``{"field", "reason", "message"}`` of a failed call, read from its
    ``google.rpc.Status`` details (``ErrorInfo``, ``BadRequest``); only the message without them."""
    out = {"field": "", "reason": "", "message": err.details() or ""}
    for key, value in err.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        out["message"] = status.message or out["message"]
        for any_msg in status.details:
            if any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_msg.Unpack(info)
                out["reason"] = info.reason
                out["field"] = out["field"] or info.metadata.get("field", "")
            elif any_msg.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                any_msg.Unpack(bad)
                if bad.field_violations:
                    out["field"] = bad.field_violations[0].field
    return out
