"""cocotb test of the fixed-width stream top (run by test_rtl_stream.py through cocotb_tools.runner).

cocotbext-axi drives ``spiker_stream_top``'s s_axis with each sample's bytes (one frame per sample)
and receives the m_axis result frames, with random pauses on both sides (back-pressure). The
stimulus bytes and the golden model's expected result bytes come from the JSON file named by
SPIKER_VECTORS, written by the pytest side.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


def _vectors() -> dict:
    with open(os.environ["SPIKER_VECTORS"]) as f:
        return json.load(f)


def _pauses(seed: int, p: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


@cocotb.test()
async def stream_top_matches_golden(dut):
    """Every sample's result frame equals the golden model's, under random back-pressure."""
    vec = _vectors()
    dut.rst.value = 1
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    await Timer(1, "ns")  # the outputs leave 'U' before the bus models sample them
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst, reset_active_level=True)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, reset_active_level=True)
    if vec["pause_in"]:
        source.set_pause_generator(_pauses(vec["seed"], vec["pause_in"]))
    if vec["pause_out"]:
        sink.set_pause_generator(_pauses(vec["seed"] + 1, vec["pause_out"]))
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    for sample in vec["samples"]:
        await source.send(AxiStreamFrame(bytes(sample)))
    for k, expected in enumerate(vec["expected"]):
        frame = await with_timeout(sink.recv(), vec["timeout_us"], "us")
        got = list(frame.tdata)
        assert got == expected, f"sample {k}: result bytes {got}, golden model {expected}"
    await ClockCycles(dut.clk, 5)
    assert sink.empty(), "more result frames than samples"
