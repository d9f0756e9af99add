import json

import numpy as np
import pytest
import torch

from spiker import NetBuilder, Optimizer, SpecError, SpikerError, SweepResult
from spiker.optimize import parse_optim_config, shard
from tests.conftest_nets import small_net

RANGES = {"weights_bw": {"min": 3, "max": 5}, "neurons_bw": {"min": 4, "max": 7}, "fp_dec": {"min": 1, "max": 3}}


def _net_and_loader(seed=0):
    net = small_net(n_inputs=10, sizes=(12, 4), n_cycles=10, beta=0.875, threshold=0.75)
    snn = NetBuilder(net).build(seed=seed)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(2.5)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(10, 40, 10, generator=gen) < 0.4).float()
    y = torch.randint(0, 4, (40,), generator=gen)
    loader = [(x[:, i:i + 16], y[i:i + 16]) for i in range(0, 40, 16)]
    return net, snn, loader


def test_grid_is_inclusive_and_validated():
    grid = parse_optim_config(RANGES)
    assert len(grid) == 3 * 4 * 3
    assert (grid[0].weights_bw, grid[0].neurons_bw, grid[0].fp_dec) == (3, 4, 1)
    with pytest.raises(SpecError, match="optim_config.fp_dec: min \\(3\\) is greater than max \\(2\\)"):
        parse_optim_config({**RANGES, "fp_dec": {"min": 3, "max": 2}})
    with pytest.raises(SpecError, match="optim_config.bias_bw: unknown key"):
        parse_optim_config({**RANGES, "bias_bw": {"min": 1, "max": 2}})
    with pytest.raises(SpecError, match="optim_config.weights_bw.max: must be an integer"):
        parse_optim_config({**RANGES, "weights_bw": {"min": 3, "max": "5"}})
    with pytest.raises(SpecError, match="shard"):
        shard(grid, 3, 3)


def test_sweep_rows_over_whole_loader_match_golden_model():
    net, snn, loader = _net_and_loader()
    result = Optimizer(snn, net, RANGES, progress=False).optimize(loader)
    assert len(result.rows) == 36 and result.n_samples == 40
    infeasible = [r for r in result.rows if not r.feasible]
    assert infeasible and all(r.reason for r in infeasible)
    assert any("weights_bw=5 > neurons_bw=4" in r.reason for r in infeasible)
    # an independent check of one row with the golden model directly
    from spiker import quantize
    row = next(r for r in result.rows if r.feasible)
    q = quantize(snn, row.optim_params)
    x = torch.cat([b[0] for b in loader], dim=1)
    y = torch.cat([b[1] for b in loader]).numpy()
    assert row.accuracy == pytest.approx((q.run(x).predictions == y).mean())
    assert row.weight_memory_bits == (10 * 12 + 12 * 4) * row.weights_bw
    # every config is costed at both events-per-cycle settings, cycles from the golden model's activity
    from spiker.hdl.sim import event_cycles, layer_fill
    activity = q.run(x).activity
    assert activity.shape == (2, 10, 40) and (activity[0] == x.sum(-1).numpy()).all()
    for hw in row.hardware:
        # docs/hardware.md: + F L - 2 + max(C - 1, 1), F = layer_fill(), L = 2 layers, C = 4 classes
        cycles = event_cycles(activity, hw.events_per_cycle) + layer_fill() * 2 - 2 + 3
        assert hw.cycles == pytest.approx(cycles.mean(), abs=1e-3) and hw.cycles_max == cycles.max()
    e1, e2 = sorted(row.hardware, key=lambda h: h.events_per_cycle)
    assert e1.cycles >= e2.cycles and e1.lut < e2.lut
    assert 0 <= row.saturation_fraction <= 1 and 0 <= row.float_agreement <= 1


def test_shards_merge_to_full_run_and_are_deterministic():
    net, snn, loader = _net_and_loader()
    opt = Optimizer(snn, net, RANGES, progress=False)
    full = opt.optimize(loader)
    again = opt.optimize(loader)
    parts = [opt.optimize(loader, shard_index=i, shard_count=3) for i in range(3)]
    merged = SweepResult.merge(parts, order=[c.key for c in full.rows])

    def strip(result):
        return [{k: v for k, v in r.__dict__.items() if k != "seconds"} for r in result.rows]

    assert strip(merged) == strip(full) == strip(again)
    with pytest.raises(SpikerError, match="overlap"):
        SweepResult.merge([parts[0], parts[0]])


def test_two_workers_give_the_same_table():
    net, snn, loader = _net_and_loader()
    one = Optimizer(snn, net, RANGES, progress=False).optimize(loader)
    two = Optimizer(snn, net, RANGES, n_workers=2, progress=False).optimize(loader)
    def table(result):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in result.to_dict()["rows"]]

    assert table(one) == table(two)


def test_select_policy_and_persistence(tmp_path):
    net, snn, loader = _net_and_loader()
    result = Optimizer(snn, net, RANGES, progress=False).optimize(loader)
    chosen = result.select(max_accuracy_drop=1.0)  # everything qualifies: the fewest estimated LUTs win
    fewest = min(c.hw.lut for c in result.candidates())
    assert chosen.estimate["lut"] == fewest and result.row(**chosen).feasible
    assert chosen == chosen.optim_params and set(chosen) == {"weights_bw", "neurons_bw", "fp_dec"}
    strict = result.select(max_accuracy_drop=0.0) if any(
        r.accuracy >= result.float_accuracy for r in result.feasible) else None
    if strict:
        assert result.row(**strict).accuracy >= result.float_accuracy
    with pytest.raises(SpikerError, match="no config reaches"):
        SweepResult(rows=[r for r in result.rows if not r.feasible], float_accuracy=0.5, float_loss=1.0,
                    n_samples=1).select(0.01)
    result.to_csv(tmp_path / "s.csv")
    result.to_json(tmp_path / "s.json")
    assert SweepResult.from_json(tmp_path / "s.json").to_dict() == json.loads((tmp_path / "s.json").read_text())
    lines = sum(max(1, len(r.hardware)) for r in result.rows)  # one line per config and hardware variant
    assert (tmp_path / "s.csv").read_text().count("\n") == lines + 1
    assert result.plot_pareto(tmp_path / "p.png", chosen).stat().st_size > 1000
    for cost in ("lut_ff", "cycles"):
        front = result.pareto_front(cost)
        assert all(getattr(a.hw, cost) <= getattr(b.hw, cost) and a.row.accuracy < b.row.accuracy
                   for a, b in zip(front, front[1:]))


def test_net_dict_must_match_model():
    net, snn, _ = _net_and_loader()
    other = small_net(n_inputs=10, sizes=(11, 4), n_cycles=10)
    with pytest.raises(SpecError, match="net_dict: describes 10-11-4"):
        Optimizer(snn, other, RANGES)


def test_select_is_within_one_point_on_a_real_sweep():
    """Selection never returns a config below float - drop."""
    net, snn, loader = _net_and_loader(seed=3)
    result = Optimizer(snn, net, RANGES, progress=False).optimize(loader)
    try:
        params = result.select(0.01)
    except SpikerError:
        assert max(r.accuracy for r in result.feasible) < result.float_accuracy - 0.01
    else:
        assert result.row(**params).accuracy >= result.float_accuracy - 0.01
        assert np.isfinite(result.row(**params).loss)


def test_sweep_leaves_the_callers_denormal_mode_alone():
    from spiker.net.denormals import flushing_denormals

    net, snn, loader = _net_and_loader()
    assert not flushing_denormals()
    Optimizer(snn, net, RANGES, progress=False).optimize(loader)
    assert not flushing_denormals()
