"""cocotb test of the fixed-width stream top (run by test_rtl_stream.py through cocotb_tools.runner).

cocotbext-axi drives ``spiker_stream_top``'s s_axis with each sample's bytes (one frame per sample)
and receives the m_axis result frames, with random pauses on both sides (back-pressure). The
stimulus bytes and the golden model's expected result bytes come from the JSON file named by
SPIKER_VECTORS, written by the pytest side.
"""

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, Timer, with_timeout
from cocotb_tb import ClockedTB, vectors
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


class StreamTopTB(ClockedTB):
    """``spiker_stream_top`` between a cocotbext-axi source and sink, each paused at random."""

    async def start(self, pause_in: float, pause_out: float) -> None:
        dut = self.dut
        dut.rst.value = 1
        dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = 0
        await Timer(1, "ns")  # the outputs leave 'U' before the bus models sample them
        self.start_clock()
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst,
                                      reset_active_level=True)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, reset_active_level=True)
        if pause_in:
            self.source.set_pause_generator(self._pauses(pause_in))
        if pause_out:
            self.sink.set_pause_generator(self._pauses(pause_out))
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    def _pauses(self, p: float):
        while True:
            yield self.rng.random() < p


@cocotb.test()
async def stream_top_matches_golden(dut):
    """Every sample's result frame equals the golden model's, under random back-pressure."""
    vec = vectors()
    tb = StreamTopTB(dut, vec["seed"])
    await tb.start(vec["pause_in"], vec["pause_out"])
    for sample in vec["samples"]:
        await tb.source.send(AxiStreamFrame(bytes(sample)))
    for k, expected in enumerate(vec["expected"]):
        frame = await with_timeout(tb.sink.recv(), vec["timeout_us"], "us")
        got = list(frame.tdata)
        assert got == expected, f"sample {k}: result bytes {got}, golden model {expected} (seed {tb.seed})"
    await ClockCycles(dut.clk, 5)
    assert tb.sink.empty(), "more result frames than samples"
