"""cocotb test of the time-multiplexed layer snn_layer_tm (run by test_rtl_serial.py)."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer
from cocotb_blocks import _int, _signed_slices, _vectors


@cocotb.test()
async def snn_layer_tm_matches_golden(dut):
    """Tokens with random gaps and back-pressure; every update equals the golden trace."""
    vec = _vectors()
    nb, n_out = vec["nb"], vec["n_out"]
    tokens, expected = vec["tokens"], vec["expected"]
    rng = random.Random(vec["seed"])
    stall = vec["stall"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.out_ready.value = 1
    dut.in_spikes.value = 0
    dut.in_last.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    k, updates, outs, cycles, first_accept, last_update = 0, [], [], 0, None, None
    offering = False  # AXI4-Stream: once valid, a token stays until it is taken (read in place)
    while len(outs) < len(tokens):
        await Timer(1, "ns")
        offering = offering or (k < len(tokens) and not (stall and rng.random() < 0.3))
        valid = offering
        ready = not (stall and rng.random() < 0.4)
        dut.in_valid.value = int(valid)
        if k < len(tokens):
            dut.in_spikes.value = tokens[k][0]
            dut.in_last.value = tokens[k][1]
        dut.out_ready.value = int(ready)
        await ReadOnly()
        fire_in = valid and _int(dut.in_ready) == 1
        if _int(dut.out_valid) and ready:
            outs.append((_int(dut.out_spikes), _int(dut.out_last)))
        await RisingEdge(dut.clk)
        cycles += 1
        if fire_in:
            if first_accept is None:
                first_accept = cycles
            k += 1
            offering = False
        await ReadOnly()
        if _int(dut.dbg_upd):
            updates.append((_int(dut.out_spikes), _signed_slices(_int(dut.dbg_v), nb, n_out),
                            _signed_slices(_int(dut.dbg_s), nb, n_out)))
            last_update = cycles
        assert cycles < 200000
    assert len(updates) == len(expected)
    for n, (got, want) in enumerate(zip(updates, expected)):
        assert got[0] == want[0], f"token {n}: spikes {got[0]:b} != {want[0]:b}"
        assert got[1] == want[1], f"token {n}: membranes {got[1]} != {want[1]}"
        if vec["syn"]:
            assert got[2] == want[2], f"token {n}: synapses {got[2]} != {want[2]}"
        else:
            assert got[2] == [0] * n_out
    assert [o[0] for o in outs] == [w[0] for w in expected]
    assert [o[1] for o in outs] == [t[1] for t in tokens]
    if not stall:
        # the cycle model (spiker.hdl.multiplex.tm_step_cycles) for a stream without gaps
        busy = last_update - first_accept
        assert busy == vec["model_cycles"], (busy, vec["model_cycles"])
