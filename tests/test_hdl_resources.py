"""Resource estimate from GHDL synthesis + yosys, and the synthesized netlist in iverilog."""

import shutil

import numpy as np
import pytest
from hdl_nets import random_net, random_spikes

from spiker.errors import ToolError
from spiker.hdl import VhdlGenerator
from spiker.hdl.resources import classify, postsynth_simulate

needs_tools = pytest.mark.skipif(not all(shutil.which(t) for t in ("ghdl", "yosys", "iverilog")),
                                 reason="needs ghdl, yosys and iverilog")


def test_classify_counts_cells():
    res = classify({"LUT2": 3, "LUT6": 2, "FDRE": 5, "FDSE": 1, "CARRY4": 4, "RAMB18E1": 1, "RAMB36E1": 2,
                    "RAM64M": 3, "DSP48E1": 1, "IBUF": 9})
    assert (res.lut, res.ff, res.carry, res.bram, res.lutram, res.dsp, res.latches) == (5, 6, 4, 2.5, 3, 1, 0)
    assert classify({"LDCE": 2}).latches == 2


@needs_tools
@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("events,workers,row_register", [(2, 2, True), (1, 1, True), (1, 1, False)])
def test_postsynthesis_netlist_matches_golden_and_has_no_latches(events, workers, row_register):
    q = random_net(11)  # 6-7-8, lif/zero then if/zero, weights_bw 2, neurons_bw 4
    x = random_spikes(2, 8, 12, q.spec.n_inputs)
    design = VhdlGenerator(q, events_per_cycle=events, row_register=row_register).generate()
    report = postsynth_simulate(design, x, workers=workers, progress=False)
    assert report.samples == 12 and report.mismatches == 0 and report.cycles > 12 * 8
    np.testing.assert_array_equal(report.counts, q.run(x).counts)
    res = report.resources
    assert res.latches == 0 and res.lut > 0 and res.ff > 0 and res.dsp == 0


@needs_tools
@pytest.mark.rtl
@pytest.mark.slow
def test_estimate_refuses_latches(monkeypatch):
    import spiker.hdl.resources as r

    design = VhdlGenerator(random_net(0, max_layers=1)).generate()
    real = r.classify
    monkeypatch.setattr(r, "classify", lambda cells: real({**cells, "LDCE": 1}))
    with pytest.raises(ToolError, match="latch"):
        design.estimate_resources()


def test_block_memories_marks_only_large_memories():
    from spiker.hdl.resources import block_memories

    text = "  reg [63:0] n23[63:0] ; // memory\n  reg [5:0] n9[3:0] ; // memory\n"
    out = block_memories(text, 2048)
    assert '(* rom_style = "block" *) reg [63:0] n23[63:0]' in out
    assert '(* rom_style = "block" *) reg [5:0] n9' not in out and "reg [5:0] n9[3:0]" in out


def test_fast_estimate_is_the_cost_models_and_says_so():
    import dataclasses

    from spiker.errors import SpikerError
    from spiker.optimize.cost_model import default_model, design_resources, shapes_of_quantized

    q = random_net(3, max_layers=2)
    design = VhdlGenerator(q, events_per_cycle=1).generate()
    res = design_resources(design, "fast")  # no tool runs: microseconds
    est = default_model().estimate(shapes_of_quantized(q), q.spec.n_cycles, q.config, events_per_cycle=1)
    assert (res.lut, res.ff, res.bram, res.dsp) == (est.lut, est.ff, est.bram, est.dsp)
    assert res.method == "fast" and res.estimated and "not synthesized" in res.note
    assert res.carry is None and res.lutram is None and res.latches is None
    assert res.to_dict()["method"] == "fast" and "not synthesized" in res.summary()
    two = dataclasses.replace(design, events_per_cycle=2)
    assert design_resources(two, "fast").lut != res.lut  # the knobs reach the model
    with pytest.raises(SpikerError, match="synth, fast"):
        design_resources(design, "quick")


def test_dead_constants_are_dropped_and_read_ones_kept():
    from spiker.hdl.resources import drop_dead_constants

    def constant(name: str) -> str:
        return (f'  /* weight_rom.vhd:54:12  */\n  always @*\n    {name} = "0101"; // (isignal)\n'
                f'  initial\n    {name} <= "0101"; // (isignal)\n')

    dead = "module a\n  (input clk);\n  reg [3:0] banks_n1_mem;\n" + constant("banks_n1_mem") + "endmodule\n"
    read = ("module b\n  (output [3:0] o);\n  reg [3:0] banks_n1_mem;\n" + constant("banks_n1_mem")
            + "  assign o = banks_n1_mem;\nendmodule\n")
    out = drop_dead_constants(dead + read)
    a, b = out.split("module b")
    assert "banks_n1_mem" not in a and a.startswith("module a\n  (input clk);\n") and a.endswith("endmodule\n")
    assert "module b" + b == read  # read by an assign: kept as it was
