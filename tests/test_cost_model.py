"""The hardware cost model: structure, stored calibration, the fitting script, the design digest."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from spiker.golden import FixedPointConfig
from spiker.optimize.cost_model import (
    COEFFICIENTS_PATH,
    DATA_PATH,
    CostModel,
    LayerShape,
    bram_blocks,
    design_digest,
    median,
    relative_error,
)

ROOT = Path(__file__).resolve().parent.parent
P1 = [LayerShape(64, 128), LayerShape(128, 10)]
P3 = [LayerShape(784, 128), LayerShape(128, 10)]
CFG = FixedPointConfig(6, 10, 4)


def _script():
    spec = importlib.util.spec_from_file_location("fit_cost_model", ROOT / "scripts" / "fit_cost_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_block_ram_count_follows_the_ramb18_shapes():
    # the seed tool's P3 layer-1 ROM (784 x 128*6 bits) takes 43 RAMB18 (reference/spiker-peer.md)
    assert bram_blocks(784, 128 * 6, ports=2) == 43 * 0.5
    assert bram_blocks(512, 36, ports=1) == 0.5 and bram_blocks(512, 36, ports=2) == 1.0
    assert bram_blocks(100, 1, ports=1) == 0.5


def test_estimates_grow_with_the_design_and_the_knobs():
    model = CostModel.load()
    small = model.estimate(P1, 25, CFG, events_per_cycle=1)
    dual = model.estimate(P1, 25, CFG, events_per_cycle=2)
    wide = model.estimate(P1, 25, FixedPointConfig(8, 12, 4), events_per_cycle=1)
    bigger = model.estimate(P3, 25, CFG, events_per_cycle=1)
    assert 0 < small.lut < dual.lut and small.lut < wide.lut and small.ff < wide.ff
    assert small.lut < bigger.lut
    assert small.blocks and sum(b[1] for b in small.blocks) == pytest.approx(small.lut, abs=len(small.blocks))
    spec_est = model.estimate_spec(_digits_spec(), CFG, 1)
    assert spec_est == small  # the digits net has P1's shape; T only sizes the readout counters
    with pytest.raises(Exception, match="events_per_cycle must be 1 or 2"):
        model.estimate(P1, 25, CFG, events_per_cycle=3)


def _digits_spec():
    from spiker.net.spec import parse_net_dict
    from tests.conftest_nets import DIGITS_NET

    return parse_net_dict({**DIGITS_NET, "layer_1": {**DIGITS_NET["layer_1"], "reset_mechanism": "none"}})


def test_stored_coefficients_meet_the_error_bounds_on_the_stored_points():
    """The committed calibration: median LUT/FF error <= 10 %, worst <= 20 % on its own points."""
    model = CostModel.load(COEFFICIENTS_PATH)
    points = [p for p in json.loads(DATA_PATH.read_text())["points"] if p["rtl"] == model.version]
    assert len(points) >= 12 and {p["net"] for p in points} >= {"digits", "P1", "P2", "P3"}
    fit = _script()
    for resource in ("lut", "ff"):
        errors = [relative_error(getattr(fit.estimate(model, p), resource), p[resource]) for p in points]
        assert median(errors) <= 0.10 and max(errors) <= 0.20, (resource, errors)


def test_the_fit_recovers_known_coefficients():
    from spiker.hdl.resources import BLOCK_RAM_MIN_BITS

    fit = _script()
    truth = CostModel({"lut": {"neuron_reg": 2.0, "sum_event2": 1.5, "neuron_nb": 9.0, "rom_lut": 1.2, "scan": 7.0,
                               "layer": 40.0, "readout": 2.0, "const": 30.0},
                       "ff": {"acc": 1.0, "state": 1.1, "scan": 1.0, "layer": 10.0, "readout": 2.0, "const": 5.0,
                              "rom_ff_lut": 1.0}}, bram_min_bits=BLOCK_RAM_MIN_BITS)
    rng = np.random.default_rng(0)
    points = []
    for i in range(14):
        n_in, n, wb = int(rng.integers(8, 200)), int(rng.integers(4, 160)), int(rng.integers(3, 9))
        nb = wb + int(rng.integers(0, 5))
        p = {"id": f"x{i}", "rtl": "t", "sizes": [n_in, n, 10], "n_cycles": 25, "weights_bw": wb, "neurons_bw": nb,
             "fp_dec": 2, "events_per_cycle": 1 + i % 2, "bram": 0.0}
        est = fit.estimate(truth, p)
        points.append({**p, "lut": est.lut, "ff": est.ff})
    model = fit.fit(points, "t")
    for p in points:
        est = fit.estimate(model, p)
        assert relative_error(est.lut, p["lut"]) < 0.01 and relative_error(est.ff, p["ff"]) < 0.01
    assert model.bram_min_bits == BLOCK_RAM_MIN_BITS  # the resource flow's rule, not a fitted number
    assert CostModel.from_dict(json.loads(json.dumps(model.to_dict()))).to_dict() == model.to_dict()


def test_design_digest_covers_what_is_synthesized():
    from spiker.hdl import VhdlGenerator
    from tests.hdl_nets import random_net

    design = VhdlGenerator(random_net(3, max_layers=2), events_per_cycle=2).generate()
    base = design_digest(design)
    assert design_digest(design.with_file("unused_block.vhd", "entity unused_block is end entity;")) == base
    assert design_digest(design.with_file("spiker_tb.vhd", "-- another testbench")) == base
    pkg = design.files["spiker_net_pkg.vhd"]
    assert design_digest(design.with_file("spiker_net_pkg.vhd", pkg + "\n-- changed")) != base
    scan = design.files["event_scan.vhd"]
    assert design_digest(design.with_file("event_scan.vhd", scan + "\n-- changed")) != base
