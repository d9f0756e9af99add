"""cocotb test of the time-multiplexed layer snn_layer_tm (run by test_rtl_serial.py)."""

import cocotb
from cocotb_tb import LayerTB, vectors


@cocotb.test()
async def snn_layer_tm_matches_golden(dut):
    """Tokens with random gaps and back-pressure; every update equals the golden trace."""
    vec = vectors()
    tb = LayerTB(dut, vec["seed"])
    run, updates, last_update = await tb.run(vec, gap=0.3, stall=0.4, max_cycles=200_000)
    tb.check(vec, run, updates)
    if not vec["syn"]:
        assert all(got[2] == [0] * vec["n_out"] for got in updates), "synapse debug port of a non-syn layer"
    if not vec["stall"]:
        # the cycle model (spiker.hdl.multiplex.tm_step_cycles) for a stream without gaps
        busy = last_update - run.first_accept
        assert busy == vec["model_cycles"], (busy, vec["model_cycles"])
