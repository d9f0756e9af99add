"""A flow spec's model.artifact: .nir uploads, owner checks and the skipped train stage (no stage work runs)."""

from __future__ import annotations

import io

import grpc
import pytest
from gw_support import ALICE, BOB, tiny_spec, wait_for

import spiker.nir as snir
from spiker import NetBuilder
from spiker_api.errors import error_detail
from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient


def _nir_bytes(net: dict) -> bytes:
    buf = io.BytesIO()
    import nir

    nir.write(buf, snir.to_nir(NetBuilder(net).build(seed=0)))
    return buf.getvalue()


def _fails(code: grpc.StatusCode, fn, *args) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args)
    assert info.value.code() == code, info.value.details()
    return error_detail(info.value)


def test_nir_upload_and_model_artifact(offline_gateway) -> None:
    spec = tiny_spec()
    data = _nir_bytes(spec["net"])
    with GatewayClient(offline_gateway.target, ALICE) as alice, GatewayClient(offline_gateway.target, BOB) as bob:
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, alice.upload_bytes, b"PK" + b"0" * 64, "net.nir")
        assert detail["reason"] == "DATA_ERROR" and "not a NIR file" in detail["message"]
        ref = alice.upload_bytes(data, "net.nir")
        with_model = {**spec, "model": {"artifact": ref.sha256}}
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, bob.submit, with_model)  # alice's upload, not bob's
        assert detail["field"] == "model.artifact"
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, alice.submit, {**spec, "model": {"nir": "net.nir"}})
        assert detail["field"] == "model.nir"
        run = alice.submit(with_model)
        # the services are unreachable: train is skipped (no call), the next stage fails
        final = wait_for(lambda: (r := alice.get(run.run_id)).state == gateway_pb2.RUN_STATE_FAILED and r, 60,
                         "the run to fail")
        stages = {s.name: s for s in final.stages}
        assert stages["train"].state == gateway_pb2.STAGE_STATE_SKIPPED
        assert stages["hdlgen"].state == gateway_pb2.STAGE_STATE_FAILED  # it got the model: train did not block it
