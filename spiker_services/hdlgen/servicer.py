"""``spiker.v1.HdlgenService``: a trained model at chosen bit-widths -> VHDL tar artifact."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from spiker.hdl.targets import TargetError, target
from spiker.optimize.cost_model import METHODS
from spiker_api import convert
from spiker_api.errors import FieldError
from spiker_api.v1 import hdlgen_pb2, hdlgen_pb2_grpc
from spiker_services.common.runtime import Call, Runtime, streaming
from spiker_services.hdlgen.job import GenerateOutput, generate_job

log = logging.getLogger(__name__)

#: library keys -> request fields (errors name the request field)
FIELD_MAP = convert.field_map(hdlgen_pb2.GenerateRequest)
SERVICE_NAME = hdlgen_pb2.DESCRIPTOR.services_by_name["HdlgenService"].full_name


class HdlgenServicer(hdlgen_pb2_grpc.HdlgenServiceServicer):
    """Generate: fetch the model, run VhdlGenerator in a child process, upload the tar."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @streaming("hdlgen", hdlgen_pb2.GenerateResponse, FIELD_MAP)
    def Generate(self, request: hdlgen_pb2.GenerateRequest, call: Call) -> Iterator[Any]:  # noqa: N802
        if not request.HasField("model"):
            raise FieldError("model", "is required (TrainResult.model)")
        if not request.HasField("optim_params"):
            raise FieldError("optim_params", "is required (weights_bw, neurons_bw, fp_dec)")
        model = convert.ref_from_proto(request.model, "model")
        params = convert.optim_params_from_proto(request.optim_params)
        # one entry: every layer; several: one per layer (0 = fully parallel); the generator checks the ranges
        knobs = convert.hardware_knobs(request)
        method = request.resources_method or "synth"
        if method not in METHODS:
            raise FieldError("resources_method", f"must be empty, {' or '.join(repr(m) for m in METHODS)}, "
                                                 f"got {request.resources_method!r}")
        implement = None
        if request.HasField("implement"):
            imp = request.implement
            if not imp.target:
                raise FieldError("implement.target", "is required (e.g. ecp5-85k)")
            try:
                target(imp.target, speed=imp.speed or None, package=imp.package or None)
            except TargetError as exc:
                raise FieldError("implement.target", str(exc)) from None
            # unset proto fields (0, "") are left out: design.implement owns the defaults
            implement = {"target": imp.target, **{k: v for k, v in (("clock_mhz", imp.clock_mhz), ("speed", imp.speed),
                         ("package", imp.package), ("stream_width", imp.stream_width)) if v}}
        dataset, npz = None, None
        if request.testbench < 0:
            raise FieldError("testbench", f"must be >= 0 (0: no verification kit), got {request.testbench}")
        if request.testbench:
            if not request.HasField("dataset"):
                raise FieldError("dataset", "is required with testbench (the kit's test samples)")
            dataset, npz = convert.dataset_from_proto(request.dataset)
        call.require(model, "model")
        if npz is not None:
            call.require(npz, "dataset.npz")
        yield from call.wait_turn()
        path = call.fetch(model, "model.pt", "model")
        if npz is not None:
            call.fetch(npz, convert.NPZ_NAME, "dataset.npz")
        out = yield from call.run_job(generate_job, model=str(path), optim_params=params,
                                      estimate_resources=request.estimate_resources,
                                      resources_method=method,
                                      **knobs,
                                      implement=implement, testbench=request.testbench or None, dataset=dataset)
        result = generate_result(out, call)
        log.info("hdlgen: %d files, %s", len(result.files), result.vhdl_tar.key)
        yield result


def generate_result(out: GenerateOutput, call: Call) -> hdlgen_pb2.GenerateResult:
    """The reply of a finished job: its files uploaded as artifacts, its numbers copied once."""
    result = hdlgen_pb2.GenerateResult(vhdl_tar=call.put(out.tar, "vhdl", "application/x-tar"), files=out.files,
                                       top_entity=out.top, optim_params=convert.optim_params_to_proto(out.optim_params),
                                       neurons_per_cycle=out.neurons_per_cycle, events_per_cycle=out.events_per_cycle,
                                       row_register=out.row_register)
    if out.resources is not None:
        res = out.resources
        result.resources.report.CopyFrom(call.put(res.path, "resources", "application/json"))
        for name, value in res.counts.items():
            result.resources.counts[name] = int(value)
        result.resources.method = res.method
    if out.implementation is not None:
        imp, impl = out.implementation, result.implementation
        impl.report.CopyFrom(call.put(imp.path, "implementation", "application/json"))
        impl.fits, impl.met, impl.status = imp.fits, imp.met, imp.status
        impl.fmax_mhz = imp.fmax_mhz or 0.0
        impl.critical_path = imp.critical_path
        for name, (used, available) in imp.utilisation.items():
            impl.used[name], impl.available[name] = used, available
    if out.testbench_tar:
        result.testbench_tar.CopyFrom(call.put(out.testbench_tar, "testbench", "application/x-tar"))
    return result
