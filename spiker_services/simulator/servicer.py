"""``spiker.v1.SimulatorService``: GHDL simulation of the design, checked against the golden model."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from spiker_api import convert
from spiker_api.errors import FieldError
from spiker_api.v1 import simulator_pb2, simulator_pb2_grpc
from spiker_services.common.runtime import Call, Runtime, streaming
from spiker_services.simulator.job import SimulateOutput, simulate_job

log = logging.getLogger(__name__)

#: library keys -> request fields (errors name the request field)
FIELD_MAP = convert.field_map(simulator_pb2.SimulateRequest)
SERVICE_NAME = simulator_pb2.DESCRIPTOR.services_by_name["SimulatorService"].full_name
#: most parallel GHDL processes one call may ask for
MAX_WORKERS = 64
#: SimulateRequest.wave -> the waveform file's name (its suffix picks the format in the library)
WAVE_FILES = {"vcd": "wave.vcd", "ghw": "wave.ghw"}


class SimulatorServicer(simulator_pb2_grpc.SimulatorServiceServicer):
    """Simulate: fetch model, design and data, run GHDL in a child process, upload the report."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @streaming("simulate", simulator_pb2.SimulateResponse, FIELD_MAP)
    def Simulate(self, request: simulator_pb2.SimulateRequest, call: Call) -> Iterator[Any]:  # noqa: N802
        for name in ("model", "optim_params", "dataset"):
            if not request.HasField(name):
                raise FieldError(name, "is required")
        model = convert.ref_from_proto(request.model, "model")
        params = convert.optim_params_from_proto(request.optim_params)
        tar = convert.ref_from_proto(request.vhdl_tar, "vhdl_tar") if request.HasField("vhdl_tar") else None
        dataset, npz = convert.dataset_from_proto(request.dataset)
        knobs = convert.hardware_knobs(request)
        if request.n_samples < 0:
            raise FieldError("n_samples", f"must be >= 0 (0: all test samples), got {request.n_samples}")
        if not 0 <= request.workers <= MAX_WORKERS:
            raise FieldError("workers", f"must be in 0..{MAX_WORKERS}, got {request.workers}")
        if request.wave and request.wave not in WAVE_FILES:
            raise FieldError("wave", f"must be vcd, ghw or empty, got {request.wave!r}")
        if request.wave_sample < 0:
            raise FieldError("wave_sample", f"must be >= 0, got {request.wave_sample}")
        for ref, field in ((model, "model"), (tar, "vhdl_tar"), (npz, "dataset.npz")):
            if ref is not None:
                call.require(ref, field)
        yield from call.wait_turn()
        yield call.progress("loading", "fetching inputs")
        model_path = call.fetch(model, "model.pt", "model")
        tar_path = call.fetch(tar, "vhdl.tar", "vhdl_tar") if tar is not None else None
        if npz is not None:
            call.fetch(npz, convert.NPZ_NAME, "dataset.npz")
        out = yield from call.run_job(
            simulate_job, model=str(model_path), optim_params=params,
            vhdl_tar=None if tar_path is None else str(tar_path), dataset=dataset,
            n_samples=request.n_samples or None, trace=request.trace, workers=request.workers or 1, knobs=knobs,
            wave=WAVE_FILES.get(request.wave), wave_sample=request.wave_sample)
        result = simulate_result(out, call)
        log.info("simulate: %d samples, %d mismatches", result.samples, result.mismatches)
        yield result


def simulate_result(out: SimulateOutput, call: Call) -> simulator_pb2.SimulateResult:
    """The reply of a finished job: its files uploaded as artifacts, its numbers copied once."""
    result = simulator_pb2.SimulateResult(
        report=call.put(out.report, "sim-report", "application/json"), samples=out.samples,
        mismatches=out.mismatches, passed=out.mismatches == 0, first_mismatch=out.first_mismatch or "",
        cycles_min=out.cycles_min, cycles_mean=out.cycles_mean, cycles_max=out.cycles_max)
    if out.hw_accuracy is not None:
        result.hw_accuracy = out.hw_accuracy
    if out.golden_accuracy is not None:
        result.golden_accuracy = out.golden_accuracy
    if out.waveform:
        result.waveform.CopyFrom(call.put(out.waveform, "waveform", "application/octet-stream"))
    return result
