"""GenerateRequest/SimulateRequest.row_register over gRPC on the local store: the lean layer end to end."""

from __future__ import annotations

import io
import tarfile

import pytest
from svc_support import SIZES, Stack, dataset_spec, drain

from spiker.hdl.generator import PKG_FILE
from spiker_api.convert import ref_from_proto
from spiker_api.v1 import common_pb2, hdlgen_pb2, simulator_pb2

PARAMS = common_pb2.OptimParams(weights_bw=4, neurons_bw=6, fp_dec=2)


def _package(stack: Stack, result: hdlgen_pb2.GenerateResult) -> str:
    data = stack.store.get_bytes(ref_from_proto(result.vhdl_tar, "vhdl_tar"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(PKG_FILE).read().decode()


def test_generate_reports_and_builds_the_row_register_knob(local_stack: Stack) -> None:
    def generate(**knob: bool) -> hdlgen_pb2.GenerateResult:
        request = hdlgen_pb2.GenerateRequest(model=local_stack.model(), optim_params=PARAMS, estimate_resources=True,
                                             resources_method="fast", **knob)
        return drain(local_stack.hdlgen.Generate(request, timeout=120))[1]

    default, lean, kept = generate(), generate(row_register=False), generate(row_register=True)
    assert default.HasField("row_register") and default.row_register is True  # unset: the generator's default
    assert "ROW_REGISTER : boolean := true" in _package(local_stack, default)
    assert lean.row_register is False and "ROW_REGISTER : boolean := false" in _package(local_stack, lean)
    assert kept.row_register is True and kept.vhdl_tar == default.vhdl_tar
    assert lean.resources.counts["ff"] < default.resources.counts["ff"]  # the estimate is of the lean design


def test_simulator_regenerates_the_lean_design(local_stack: Stack) -> None:
    """Without a vhdl_tar the simulator builds the design from the knobs: the lean layer fills a cycle sooner."""
    def simulate(**knob: bool) -> simulator_pb2.SimulateResult:
        request = simulator_pb2.SimulateRequest(model=local_stack.model(), optim_params=PARAMS,
                                                dataset=dataset_spec(local_stack.npz), n_samples=3, **knob)
        return drain(local_stack.simulator.Simulate(request, timeout=180))[1]

    default, lean = simulate(), simulate(row_register=False)
    assert default.passed and lean.passed and default.samples == lean.samples == 3
    layers = len(SIZES)  # one cycle less pipeline fill a layer, every sample (spiker.hdl.sim.layer_fill)
    assert (default.cycles_min - lean.cycles_min, default.cycles_max - lean.cycles_max) == (layers, layers)
    assert default.cycles_mean - lean.cycles_mean == pytest.approx(layers)
