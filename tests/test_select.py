"""Selection by objective and budget (SweepResult.select), its errors, and a yosys check of a budget."""

import json
import math

import pytest
import torch

from spiker import NetBuilder, Optimizer, SpikerError
from spiker.optimize.sweep import HardwarePoint, Selection, SweepResult, SweepRow
from tests.conftest_nets import small_net


def _hw(e, lut, ff, bram, cycles, p=None):
    return HardwarePoint(events_per_cycle=e, neurons_per_cycle=p, cycles=cycles, cycles_max=int(cycles) + 5,
                         lut=lut, ff=ff, bram=bram)


def _result():
    """Four configs (one infeasible, one below the floor) with two hardware variants each."""
    rows = [
        SweepRow(4, 6, 3, True, accuracy=0.95, hardware=[_hw(1, 1000, 300, 0, 90.0), _hw(2, 1300, 310, 0, 50.0)]),
        SweepRow(5, 8, 4, True, accuracy=0.96, hardware=[_hw(1, 1200, 350, 1, 88.0), _hw(2, 1500, 360, 1, 48.0)]),
        SweepRow(6, 10, 4, True, accuracy=0.97, hardware=[_hw(1, 1400, 400, 0.5, 87.0),
                                                          _hw(2, 1800, 410, 0.5, 47.0)]),
        SweepRow(3, 4, 2, True, accuracy=0.80, hardware=[_hw(1, 500, 100, 0, 80.0), _hw(2, 700, 110, 0, 45.0)]),
        SweepRow(2, 4, 4, False, reason="threshold does not fit"),
    ]
    return SweepResult(rows=rows, float_accuracy=0.97, float_loss=1.0, n_samples=100)


def test_objectives_pick_the_cheapest_within_the_floor():
    r = _result()
    lut = r.select(0.05)
    assert isinstance(lut, Selection) and lut == {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 3}
    assert lut.hardware == {"events_per_cycle": 1, "neurons_per_cycle": None}
    assert lut.estimate == {"lut": 1000, "ff": 300, "bram": 0, "dsp": 0} and lut.accuracy == 0.95
    assert lut.runner_up.row.key == (5, 8, 4) and lut.runner_up.hw.lut == 1200
    assert "objective lut" in lut.reason and "runner-up 5/8/4 E=1" in lut.reason
    latency = r.select(0.05, objective="latency")
    assert latency == {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 4}
    assert latency.hardware["events_per_cycle"] == 2 and latency.cycles == 47.0
    bram = r.select(0.05, objective="bram")  # 0 BRAM ties: fewest LUT+FF, then accuracy
    assert bram == {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 3} and bram.hardware["events_per_cycle"] == 1
    # a tight floor leaves only the most accurate config
    assert r.select(0.0) == {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 4}


def test_budgets_filter_and_combine():
    r = _result()
    fast_small = r.select(0.05, objective="latency", max_lut=1400)
    assert (fast_small.candidate.row.key, fast_small.hardware["events_per_cycle"]) == ((4, 6, 3), 2)
    assert fast_small.budget == {"max_lut": 1400}
    assert r.select(0.05, max_cycles=60).hardware["events_per_cycle"] == 2
    assert r.select(0.05, objective="latency", max_bram=0.5, max_ff=405).candidate.hw.cycles == 50.0
    data = json.loads(json.dumps(fast_small.to_dict()))
    assert data["optim_params"] == dict(fast_small) and data["runner_up"]["hardware"]["events_per_cycle"] in (1, 2)


def test_an_impossible_budget_names_the_tightest_constraint_and_the_closest_config():
    r = _result()
    with pytest.raises(SpikerError) as err:
        r.select(0.05, max_lut=900, max_cycles=100)
    text = str(err.value)
    assert "max_lut=900 is the tightest constraint" in text and "closest config is 4/6/3 E=1" in text
    assert "1,000 LUT (limit 900)" in text and "\n" not in text
    with pytest.raises(SpikerError, match="max_cycles=40 is the tightest.*closest config is 6/10/4 E=2"):
        r.select(0.05, max_cycles=40, max_lut=5000)
    r.float_accuracy = 0.99
    with pytest.raises(SpikerError, match="no config reaches accuracy >= 0.9900.*best is 0.9700"):
        r.select(0.0, max_lut=10)  # the floor is checked first
    for bad in ({"objective": "area"}, {"max_lut": -1}, {"max_cycles": "10"}):
        with pytest.raises(SpikerError):
            r.select(0.05, **bad)


def test_selection_survives_json_and_the_plot_marks_it(tmp_path):
    r = SweepResult.from_dict(json.loads(json.dumps(_result().to_dict())))
    sel = r.select(0.05, objective="latency", max_lut=1400)
    assert sel.candidate.hw == _hw(2, 1300, 310, 0, 50.0)
    assert r.plot_pareto(tmp_path / "p.png", sel).stat().st_size > 10_000
    front = r.pareto_front("lut_ff")
    assert [c.row.key for c in front] == [(3, 4, 2), (4, 6, 3), (5, 8, 4), (6, 10, 4)]


def test_sweep_without_hardware_falls_back_to_weight_memory():
    rows = [SweepRow(4, 6, 3, True, accuracy=0.9, weight_memory_bits=400),
            SweepRow(3, 6, 3, True, accuracy=0.9, weight_memory_bits=300)]
    old = SweepResult(rows=rows, float_accuracy=0.9, float_loss=1.0, n_samples=10)
    with pytest.warns(UserWarning, match="weight memory"):
        assert old.select(0.01)["weights_bw"] == 3
    with pytest.raises(SpikerError, match="no hardware estimates"):
        old.select(0.01, max_lut=100)


@pytest.mark.slow
def test_lut_budget_holds_under_yosys_and_nothing_cheaper_qualifies():
    """Under a LUT budget the selected design's yosys LUT count is within it, and no config of the
    sweep within the accuracy floor has fewer estimated LUTs."""
    pytest.importorskip("scipy")
    from spiker.hdl import VhdlGenerator
    from spiker.hdl.tools import find_tool

    try:
        find_tool("yosys"), find_tool("ghdl")
    except SpikerError as exc:
        pytest.skip(str(exc))
    net = small_net(n_inputs=8, sizes=(12, 4), n_cycles=8, beta=0.875, threshold=0.75)
    snn = NetBuilder(net).build(seed=1)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(2.0)
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(8, 48, 8, generator=gen) < 0.4).float()
    y = torch.randint(0, 4, (48,), generator=gen)
    ranges = {"weights_bw": {"min": 3, "max": 6}, "neurons_bw": {"min": 6, "max": 8}, "fp_dec": {"min": 2, "max": 3}}
    result = Optimizer(snn, net, ranges, progress=False).optimize([(x, y)])
    floor_drop = 0.1
    cands = [c for c in result.candidates() if c.row.accuracy >= result.float_accuracy - floor_drop - 1e-12]
    budget = 1.15 * min(c.hw.lut for c in cands)  # a budget the cheapest config meets with the model's margin
    sel = result.select(floor_drop, objective="lut", max_lut=budget)
    assert all(c.hw.lut >= sel.estimate["lut"] for c in cands)
    design = VhdlGenerator(snn, dict(sel), events_per_cycle=sel.hardware["events_per_cycle"]).generate()
    measured = design.estimate_resources()
    assert measured.lut <= budget, (measured.lut, budget, sel.reason)
    assert math.isclose(measured.lut, sel.estimate["lut"], rel_tol=0.2)


def test_report_states_the_choice_and_estimated_beside_measured():
    from spiker_gateway.report import render_markdown

    sel = _result().select(0.05, objective="latency", max_lut=1400)
    report = {"run_id": "r1", "name": "t", "float_accuracy": 0.97, "quant_accuracy": sel.accuracy,
              "quant_accuracy_source": "sweep", "hw_accuracy": 0.95, "mismatches": 0, "samples": 10,
              "optim_params": dict(sel), "cycles_mean": 51.0, "cycles_min": 40, "cycles_max": 60, "bound_mean": 50.0,
              "resources": {"lut": 1250, "ff": 300, "bram": 0, "dsp": 0}, "stages": {}, "artifacts": {},
              "selection": json.loads(json.dumps(sel.to_dict()))}
    text = render_markdown(report)
    assert "objective **latency**, budget max_lut=1400" in text and "Runner-up: `{'weights_bw': 6" in text
    assert "| LUT | 1300 | 1250 |" in text and "| cycles/inference | 50.0" in text
