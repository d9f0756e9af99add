"""Spec text -> validated FlowSpec, with the gateway's limits; every error names its field.

Parsing: the library's one spec parser (``spiker.flow.spec_text``: YAML 1.2 numbers, no aliases,
no duplicate keys), then ``parse_flow_spec``. Then the gateway's checks: non-finite or out-of-range numbers, network
size, epochs, samples, workers, and a spec that names a file path (a server reads no client
paths: upload the .npz and set ``dataset.artifact``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from spiker.errors import SpecError
from spiker.flow.spec import FlowSpec, parse_flow_spec
from spiker.flow.spec_text import parse_spec_text
from spiker.optimize.optimizer import count_configs
from spiker_api.limits import SizeLimits, check_net

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Limits(SizeLimits):
    """What one gateway accepts: the stage services' size limits (one definition) and its own."""

    max_concurrent_runs: int = 2
    #: per user: runs waiting in the queue, runs running at once (0: max_concurrent_runs), submits a
    #: minute (and burst)
    max_queued_per_user: int = 50
    max_running_per_user: int = 0
    submit_rate_per_minute: float = 60.0
    submit_burst: int = 20
    #: per user: bytes of uploaded datasets and models kept in the store
    max_stored_bytes_per_user: int = 4 << 30
    max_upload_bytes: int = 64 * 1024 * 1024
    #: bytes the arrays of an uploaded .npz may take once loaded (checked from their headers)
    max_dataset_bytes: int = 1 << 30
    max_spec_bytes: int = 256 * 1024
    #: bit-width configs one sweep may score (counted from the ranges, never built to be counted)
    max_configs: int = 10_000


def parse_text(text: str) -> Any:
    """The document of a YAML/JSON spec text (the library's one spec parser)."""
    return parse_spec_text(text)


def _check_numbers(value: Any, path: str, depth: int = 0) -> None:
    """Refuse NaN/inf, integers outside int32 and nesting deeper than 32 levels."""
    if depth > 32:
        raise SpecError(path or "spec", "nested too deeply")
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(path or "spec", f"must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) > INT32_MAX:
        raise SpecError(path or "spec", f"out of range (|value| <= {INT32_MAX}), got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_numbers(item, f"{path}[{i}]", depth + 1)


def check_limits(spec: FlowSpec, limits: Limits) -> None:
    """The gateway's size limits; raises SpecError naming the field."""
    check_net(spec.net_spec, limits, "net")  # the one size check, shared with the stage services
    checks = (("train.epochs", spec.train.epochs, limits.max_epochs),
              ("simulate.samples", spec.simulate.samples, limits.max_samples),
              ("hdl.testbench", spec.hdl.testbench or 0, limits.max_samples),
              ("simulate.workers", spec.simulate.workers, limits.max_workers),
              ("optimize.workers", spec.optimize.workers, limits.max_workers),
              ("dataset.batch_size", spec.dataset.batch_size, 1 << 16))
    for key, value, limit in checks:
        if value > limit:
            raise SpecError(key, f"at most {limit} on this gateway, got {value}")
    if spec.select.optim_params is None:
        n_configs = count_configs(spec.optimize.ranges)
        if n_configs > limits.max_configs:
            raise SpecError("optimize", f"the bit-width grid has {n_configs} configs; at most "
                                        f"{limits.max_configs} on this gateway (narrow the ranges)")
    if spec.model is not None and spec.model.nir is not None:
        raise SpecError("model.nir", "the gateway reads no client paths: upload the .nir file (`spiker run` and "
                                     "`spiker submit` do) and set model.artifact to its sha256")
    if spec.dataset_artifact is None and spec.dataset.name not in ("digits", "mnist1d"):
        raise SpecError("dataset.name", "the gateway reads no client paths: upload the .npz (UploadDataset, "
                                        "`spiker submit --data`) and set dataset.artifact to its sha256")


def validate_spec(text: str, limits: Limits) -> FlowSpec:
    """Parse and check a spec text; raises SpecError (``key`` = the field) for anything wrong."""
    if len(text.encode()) > limits.max_spec_bytes:
        raise SpecError("spec", f"larger than {limits.max_spec_bytes} bytes")
    raw = parse_text(text)
    _check_numbers(raw, "")
    try:
        spec = parse_flow_spec(raw)
    except SpecError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # the library let a malformed value through to a type error: still the user's input
        log.warning("spec rejected by an unexpected %s", type(exc).__name__, exc_info=exc)
        raise SpecError("spec", f"malformed spec: {type(exc).__name__}: {exc}") from None
    check_limits(spec, limits)
    return spec
