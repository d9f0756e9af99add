"""cocotb tests of the RTL library blocks (run by test_rtl_blocks.py through cocotb_tools.runner).

Each test reads its stimuli and golden-model expectations from the JSON file named by
the environment variable SPIKER_VECTORS, written by the pytest side; the clock, reset and
stream driving are :mod:`cocotb_tb`'s.
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, Timer
from cocotb_tb import Channel, ClockedTB, LayerTB, StreamTB, as_int, signed_slices, unsigned_slices, vectors


@cocotb.test()
async def event_scan_lowest_spike(dut):
    """The lowest set bit, with EVENTS = 2 also the highest (when another), and the rest."""
    vec = vectors()
    n, events = vec["n_in"], vec["events"]
    for value in vec["inputs"]:
        dut.spikes.value = value
        await Timer(1, "ns")
        found = as_int(dut.found)
        assert found == (1 if value else 0), value
        two = events == 2 and bin(value).count("1") >= 2
        assert as_int(dut.found2) == int(two), (value, as_int(dut.found2))
        if value:
            low = (value & -value).bit_length() - 1
            rest = value & ~(1 << low)
            assert as_int(dut.idx) == low, (value, as_int(dut.idx))
            if two:
                high = value.bit_length() - 1
                assert as_int(dut.idx2) == high, (value, as_int(dut.idx2))
                rest &= ~(1 << high)
            assert as_int(dut.rest) == rest, (value, as_int(dut.rest), rest)
            assert as_int(dut.last) == (1 if rest == 0 else 0)
        else:
            assert as_int(dut.last) == 1
    assert n >= 1


@cocotb.test()
async def weight_rom_rows(dut):
    """Synchronous read: a row appears one rising edge after its address, on both ports."""
    vec = vectors()
    rows, wb = vec["rows"], vec["wb"]
    dut.addr.value = 0
    dut.addr2.value = 0
    ClockedTB(dut).start_clock()
    await RisingEdge(dut.clk)
    await Timer(1, "ns")
    for addr, row in enumerate(rows):
        addr2 = len(rows) - 1 - addr  # second port: the same memory, another word
        dut.addr.value = addr
        dut.addr2.value = addr2
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert signed_slices(as_int(dut.row), wb, len(row)) == row, addr
        if vec["ports"] == 2:
            assert signed_slices(as_int(dut.row2), wb, len(row)) == rows[addr2], addr2
        await Timer(1, "ns")
    dut.addr.value = 0
    await Timer(3, "ns")
    # the row holds until the next rising edge
    assert signed_slices(as_int(dut.row), wb, len(rows[-1])) == rows[-1]
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert signed_slices(as_int(dut.row), wb, len(rows[0])) == rows[0]


@cocotb.test()
async def neuron_update_matches_golden(dut):
    vec = vectors()
    nb = vec["nb"]
    for v, s, r, i, v_new, s_new, spk in vec["cases"]:
        dut.v_in.value = v & ((1 << nb) - 1)
        dut.s_in.value = s & ((1 << nb) - 1)
        dut.r_in.value = r
        dut.i_in.value = i & ((1 << vec["acc"]) - 1)
        await Timer(1, "ns")
        got = (dut.v_out.value.to_signed(), dut.s_out.value.to_signed(), as_int(dut.spike))
        want = (v_new, s_new if vec["syn"] else 0, spk)
        assert got == want, f"v={v} s={s} r={r} I={i}: got {got}, want {want}"


@cocotb.test()
async def snn_layer_matches_golden(dut):
    """Tokens with random gaps and back-pressure; every update equals the golden trace."""
    vec = vectors()
    tb = LayerTB(dut, vec["seed"])
    run, updates, last_update = await tb.run(vec, gap=0.3, stall=0.3, max_cycles=100_000)
    tb.check(vec, run, updates)
    if not vec["stall"]:
        # event driven: max(ceil(a / E), 1) + U cycles a step once running, 3 more to start
        e, u = vec["events"], vec["update"]
        bound = sum(max(-(-bin(t[0]).count("1") // e), 1) + u for t in vec["tokens"]) + 3
        assert last_update - run.first_accept + 1 <= bound, (last_update - run.first_accept + 1, bound)


@cocotb.test()
async def spike_readout_counts_and_class(dut):
    """Spike tokens in, under random output back-pressure; each sample's class and saturated counts."""
    vec = vectors()
    n_cls, cb = vec["n_cls"], vec["cb"]
    tb = StreamTB(dut, Channel("in_valid", "in_ready", ("in_spikes", "in_last")),
                  Channel("m_valid", "m_ready", ("m_class", "m_counts")), vec["seed"])
    await tb.reset()
    run = await tb.stream(vec["tokens"], vec["n_samples"], stall=0.3)
    results = [(cls, unsigned_slices(counts, cb, n_cls)) for cls, counts in run.outputs]
    assert results == [tuple(e) for e in vec["expected"]]


@cocotb.test()
async def core_equal_shape_layers(dut):
    """The generated core through its AXI4-Stream ports: each result word equals the golden model's
    (packed on the pytest side by spiker.hdl.stream_format, the one place of its layout)."""
    vec = vectors()
    tb = StreamTB(dut, Channel.axis("s_axis"), Channel.axis("m_axis", ("tdata",)), vec["seed"])
    await tb.reset()
    beats = [(value, int(t == len(steps) - 1)) for steps in vec["samples"] for t, value in enumerate(steps)]
    run = await tb.stream(beats, len(vec["samples"]))
    for sample, ((got,), want) in enumerate(zip(run.outputs, vec["words"])):
        assert got == want, (f"sample {sample}: m_axis_tdata {got:#x}, golden {want:#x} "
                             f"(counts {vec['counts'][sample]}, class {vec['classes'][sample]})")


@cocotb.test()
async def neuron_unit_matches_golden(dut):
    """The lean datapath driven like snn_layer does: event cycles, then the update phases."""
    vec = vectors()
    events, phases, pa = vec["events"], vec["phases"], vec["spike_phase"]
    wmask = (1 << vec["wb"]) - 1
    tb = ClockedTB(dut, vec["seed"])
    await tb.reset({"add1": 0, "add2": 0, "w1": 0, "w2": 0, "u": 0, "clear": 0, "fresh": 1})
    rng = tb.rng
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
                got = (as_int(dut.spike), dut.v_dbg.value.to_signed(), dut.s_dbg.value.to_signed())
                assert got[:2] == tuple(want[:2]), f"step {n}: spike/v {got[:2]} != {want[:2]}"
                if vec["syn"]:
                    assert got[2] == want[2], f"step {n}: synapse {got[2]} != {want[2]}"
                await Timer(1, "ns")
        dut.u.value = 0
        dut.clear.value = 0
        fresh = last
