"""cocotb tests of the RTL library blocks (run by test_rtl_blocks.py through cocotb_tools.runner).

Each test reads its stimuli and golden-model expectations from the JSON file named by
the environment variable SPIKER_VECTORS, written by the pytest side.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer


def _vectors() -> dict:
    with open(os.environ["SPIKER_VECTORS"]) as f:
        return json.load(f)


def _signed_slices(value: int, width: int, count: int) -> list[int]:
    out = []
    for j in range(count):
        v = (value >> (j * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if v >> (width - 1) else v)
    return out


def _int(sig) -> int:
    return int(sig.value)


@cocotb.test()
async def event_scan_lowest_spike(dut):
    """The lowest set bit, with EVENTS = 2 also the highest (when another), and the rest."""
    vec = _vectors()
    n, events = vec["n_in"], vec["events"]
    for value in vec["inputs"]:
        dut.spikes.value = value
        await Timer(1, "ns")
        found = _int(dut.found)
        assert found == (1 if value else 0), value
        two = events == 2 and bin(value).count("1") >= 2
        assert _int(dut.found2) == int(two), (value, _int(dut.found2))
        if value:
            low = (value & -value).bit_length() - 1
            rest = value & ~(1 << low)
            assert _int(dut.idx) == low, (value, _int(dut.idx))
            if two:
                high = value.bit_length() - 1
                assert _int(dut.idx2) == high, (value, _int(dut.idx2))
                rest &= ~(1 << high)
            assert _int(dut.rest) == rest, (value, _int(dut.rest), rest)
            assert _int(dut.last) == (1 if rest == 0 else 0)
        else:
            assert _int(dut.last) == 1
    assert n >= 1


@cocotb.test()
async def weight_rom_rows(dut):
    """Synchronous read: a row appears one rising edge after its address, on both ports."""
    vec = _vectors()
    rows, wb = vec["rows"], vec["wb"]
    dut.addr.value = 0
    dut.addr2.value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await RisingEdge(dut.clk)
    await Timer(1, "ns")
    for addr, row in enumerate(rows):
        addr2 = len(rows) - 1 - addr  # second port: the same memory, another word
        dut.addr.value = addr
        dut.addr2.value = addr2
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert _signed_slices(_int(dut.row), wb, len(row)) == row, addr
        if vec["ports"] == 2:
            assert _signed_slices(_int(dut.row2), wb, len(row)) == rows[addr2], addr2
        await Timer(1, "ns")
    dut.addr.value = 0
    await Timer(3, "ns")
    # the row holds until the next rising edge
    assert _signed_slices(_int(dut.row), wb, len(rows[-1])) == rows[-1]
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert _signed_slices(_int(dut.row), wb, len(rows[0])) == rows[0]


@cocotb.test()
async def neuron_update_matches_golden(dut):
    vec = _vectors()
    nb = vec["nb"]
    for v, s, r, i, v_new, s_new, spk in vec["cases"]:
        dut.v_in.value = v & ((1 << nb) - 1)
        dut.s_in.value = s & ((1 << nb) - 1)
        dut.r_in.value = r
        dut.i_in.value = i & ((1 << vec["acc"]) - 1)
        await Timer(1, "ns")
        got = (dut.v_out.value.to_signed(), dut.s_out.value.to_signed(), _int(dut.spike))
        want = (v_new, s_new if vec["syn"] else 0, spk)
        assert got == want, f"v={v} s={s} r={r} I={i}: got {got}, want {want}"


@cocotb.test()
async def snn_layer_matches_golden(dut):
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
    k, updates, outs, cycles, first_accept = 0, [], [], 0, None
    while len(outs) < len(tokens):
        await Timer(1, "ns")
        valid = k < len(tokens) and not (stall and rng.random() < 0.3)
        ready = not (stall and rng.random() < 0.3)
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
        await ReadOnly()
        if _int(dut.dbg_upd):
            updates.append((_int(dut.out_spikes), _signed_slices(_int(dut.dbg_v), nb, n_out),
                            _signed_slices(_int(dut.dbg_s), nb, n_out)))
            last_update = cycles
        assert cycles < 100000
    assert len(updates) == len(expected)
    for n, (got, want) in enumerate(zip(updates, expected)):
        assert got[0] == want[0], f"token {n}: spikes {got[0]:b} != {want[0]:b}"
        assert got[1] == want[1], f"token {n}: membranes {got[1]} != {want[1]}"
        if vec["syn"]:
            assert got[2] == want[2], f"token {n}: synapses {got[2]} != {want[2]}"
    assert [o[0] for o in outs] == [w[0] for w in expected]
    assert [o[1] for o in outs] == [t[1] for t in tokens]
    if not stall:
        # event driven: max(ceil(a / E), 1) + U cycles a step once running, 3 more to start
        e, u = vec["events"], vec["update"]
        bound = sum(max(-(-bin(t[0]).count("1") // e), 1) + u for t in tokens) + 3
        assert last_update - first_accept + 1 <= bound, (last_update - first_accept + 1, bound)


@cocotb.test()
async def spike_readout_counts_and_class(dut):
    vec = _vectors()
    n_cls, cb = vec["n_cls"], vec["cb"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.m_ready.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    results = []
    tokens = vec["tokens"]
    k = 0
    rng = random.Random(1)
    while len(results) < vec["n_samples"]:
        await Timer(1, "ns")
        valid = k < len(tokens)
        ready = rng.random() < 0.7
        dut.in_valid.value = int(valid)
        if valid:
            dut.in_spikes.value = tokens[k][0]
            dut.in_last.value = tokens[k][1]
        dut.m_ready.value = int(ready)
        await ReadOnly()
        fire = valid and _int(dut.in_ready)
        if _int(dut.m_valid) and ready:
            value = _int(dut.m_counts)
            results.append((_int(dut.m_class), [(value >> (c * cb)) & ((1 << cb) - 1) for c in range(n_cls)]))
        await RisingEdge(dut.clk)
        if fire:
            k += 1
    assert results == [tuple(e) for e in vec["expected"]]


@cocotb.test()
async def core_equal_shape_layers(dut):
    """The generated core through its AXI4-Stream ports: counts and class equal the golden model's."""
    vec = _vectors()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    n_cls, cb, clsb = vec["n_cls"], vec["cb"], vec["clsb"]
    beats = [(value, int(t == len(steps) - 1)) for steps in vec["samples"] for t, value in enumerate(steps)]
    k, results = 0, []
    while len(results) < len(vec["samples"]):
        await Timer(1, "ns")
        valid = k < len(beats)
        dut.s_axis_tvalid.value = int(valid)
        if valid:
            dut.s_axis_tdata.value = beats[k][0]
            dut.s_axis_tlast.value = beats[k][1]
        await ReadOnly()
        fire = valid and _int(dut.s_axis_tready)
        if _int(dut.m_axis_tvalid):
            data = _int(dut.m_axis_tdata)
            results.append(([(data >> (c * cb)) & ((1 << cb) - 1) for c in range(n_cls)],
                            (data >> (n_cls * cb)) & ((1 << clsb) - 1)))
        await RisingEdge(dut.clk)
        if fire:
            k += 1
    for sample, (got, counts, cls) in enumerate(zip(results, vec["counts"], vec["classes"])):
        assert got == (counts, cls), f"sample {sample}: got {got}, want {(counts, cls)}"


@cocotb.test()
async def neuron_unit_matches_golden(dut):
    """The lean datapath driven like snn_layer does: event cycles, then the update phases."""
    vec = _vectors()
    events, phases, pa = vec["events"], vec["phases"], vec["spike_phase"]
    wmask = (1 << vec["wb"]) - 1
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.add1.value = 0
    dut.add2.value = 0
    dut.w1.value = 0
    dut.w2.value = 0
    dut.u.value = 0
    dut.clear.value = 0
    dut.fresh.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    rng = random.Random(vec["seed"])
    fresh = 1
    for n, (weights, last, want) in enumerate(vec["steps"]):
        pending = list(weights)
        while pending:
            pair, pending = pending[:events], pending[events:]
            dut.add1.value = 1
            dut.w1.value = pair[0] & wmask
            dut.add2.value = int(len(pair) == 2)
            dut.w2.value = (pair[1] if len(pair) == 2 else 0) & wmask
            await RisingEdge(dut.clk)
            dut.add1.value = 0
            dut.add2.value = 0
            for _ in range(rng.randrange(2)):  # idle cycles keep the register
                await RisingEdge(dut.clk)
        dut.clear.value = last
        dut.fresh.value = fresh
        for k in range(1, phases + 1):
            dut.u.value = 1 << (3 - k)  # u is (1 to 3): element k is bit 3 - k
            await RisingEdge(dut.clk)
            if k == pa:
                await ReadOnly()
                got = (_int(dut.spike), dut.v_dbg.value.to_signed(), dut.s_dbg.value.to_signed())
                assert got[:2] == tuple(want[:2]), f"step {n}: spike/v {got[:2]} != {want[:2]}"
                if vec["syn"]:
                    assert got[2] == want[2], f"step {n}: synapse {got[2]} != {want[2]}"
                await Timer(1, "ns")
        dut.u.value = 0
        dut.clear.value = 0
        fresh = last
