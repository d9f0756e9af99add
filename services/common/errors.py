"""Map exceptions to gRPC status codes and error details (docs/services.md, "Errors").

User errors (``SpecError``, ``InfeasibleConfigError``, ``DataError``, bad refs) become
``INVALID_ARGUMENT`` naming the request field; store errors take the code the store suggests;
anything unexpected is ``INTERNAL`` and logged with its traceback. An :class:`ErrorInfo` is plain
data, so child processes and sweep workers can send it back to the servicer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import grpc

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

#: trailing metadata keys carried by every error a servicer raises on purpose
FIELD_KEY = "spiker-field"
REASON_KEY = "spiker-reason"
DETAIL_KEY = "spiker-error-detail-bin"


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


def describe_error(exc: BaseException) -> ErrorInfo:
    """Classify an exception into an :class:`ErrorInfo` (never ``UNKNOWN``)."""
    field = str(getattr(exc, "spiker_field", "") or "")
    if isinstance(exc, RemoteError):
        return exc.info
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


def abort(context: grpc.ServicerContext, info: ErrorInfo) -> None:
    """Set the error's trailing metadata and abort the call with its status (raises)."""
    from spiker_api.v1 import common_pb2

    detail = common_pb2.ErrorDetail(field=info.field, reason=info.reason, message=info.message)
    metadata = [(REASON_KEY, info.reason), (DETAIL_KEY, detail.SerializeToString())]
    if info.field:
        metadata.append((FIELD_KEY, _ascii(info.field)))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(info.status, info.message)


def _ascii(text: str) -> str:
    """A metadata-safe value: printable ASCII only, anything else escaped as Python would."""
    return "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text)


def error_detail(err: grpc.RpcError) -> dict[str, str]:
    """Client side: ``{"field", "reason", "message"}`` from a failed call's trailing metadata."""
    from spiker_api.v1 import common_pb2

    out = {"field": "", "reason": "", "message": err.details() or ""}
    for key, value in err.trailing_metadata() or ():
        if key == DETAIL_KEY:
            detail = common_pb2.ErrorDetail.FromString(value)
            out.update(field=detail.field, reason=detail.reason, message=detail.message)
    return out
