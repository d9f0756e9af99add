"""GHDL co-simulation of designs with time-multiplexed layers (neurons_per_cycle P < N)."""

import shutil

import numpy as np
import pytest
from hdl_nets import layer, random_net, random_spikes

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.hdl.multiplex import n_groups, resolve_neurons_per_cycle, scan_cycles, tm_step_cycles
from spiker.net.spec import parse_net_dict


def test_resolve_neurons_per_cycle():
    sizes = [6, 3]
    assert resolve_neurons_per_cycle(sizes) == (6, 3)
    assert resolve_neurons_per_cycle(sizes, 4) == (4, 3)
    assert resolve_neurons_per_cycle(sizes, [2, None]) == (2, 3)
    assert resolve_neurons_per_cycle(sizes, {"layer_1": 1}) == (6, 1)
    assert resolve_neurons_per_cycle(sizes, {0: 5}) == (5, 3)
    assert n_groups(6, 4) == 2 and n_groups(6, 6) == 1
    for bad, key in (({"layer_1": 4}, "neurons_per_cycle.layer_1"), ({"layer_7": 1}, "neurons_per_cycle.layer_7"),
                     ([0, 1], "neurons_per_cycle.layer_0"), ([1], "2 layers"), (0, ">= 1"), ("2", "int"),
                     ([True, 1], "neurons_per_cycle.layer_0")):
        with pytest.raises(ValueError, match=key):
            resolve_neurons_per_cycle(sizes, bad)


def test_generator_picks_the_layer_entity():
    q = random_net(3)
    n = [la.n_neurons for la in q.layers]
    p = [max(1, k // 2) for k in n]
    design = VhdlGenerator(q, neurons_per_cycle=p).generate()
    assert design.neurons_per_cycle == tuple(p)
    core = design.files["spiker_core.vhd"]
    tm = sum(1 for k, pk in zip(n, p) if pk < k)
    assert core.count("entity work.snn_layer_tm") == tm
    assert core.count("entity work.snn_layer\n") == len(n) - tm
    with pytest.raises(ValueError, match="neurons_per_cycle.layer_0"):
        VhdlGenerator(q, neurons_per_cycle=[n[0] + 1] + p[1:])


# seed of hdl_nets.random_net, events per cycle, P as a fraction of each layer's N
CASES = [(1, 1, 0.3), (2, 2, 0.01), (3, 2, 0.5), (4, 2, 0.6), (5, 1, 0.01), (6, 2, 0.4), (7, 1, 0.5)]


def _skewed(c: np.ndarray) -> np.ndarray:
    """``sum_k max_l c_l(k - l)``: layer l works on step k - l while layer 0 works on step k."""
    n_layers, steps = c.shape[:2]
    skew = np.zeros((n_layers, steps + n_layers - 1, *c.shape[2:]), dtype=np.int64)
    for i in range(n_layers):
        skew[i, i:i + steps] = c[i]
    return skew.max(axis=0).sum(axis=0)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("seed,events,frac", CASES)
def test_time_multiplexed_nets_are_bit_exact_with_trace(seed, events, frac):
    q = random_net(seed)
    p = [max(1, int(la.n_neurons * frac)) for la in q.layers]
    design = VhdlGenerator(q, events_per_cycle=events, neurons_per_cycle=p).generate()
    steps = int(np.random.default_rng(seed).integers(3, 10))
    x = random_spikes(seed, steps=steps, batch=5, n=q.spec.n_inputs)
    report = design.simulate(x, trace=True, workers=1)
    assert report.mismatches == 0, str(report)
    np.testing.assert_array_equal(report.counts, q.run(x).counts)
    if all(pk < la.n_neurons for la, pk in zip(q.layers, p)):
        # the layers' step cycles (tm_step_cycles) in the pipeline, plus the wait of a layer for
        # its consumer to scan and accept the previous step (at most S0 + 2 per step and layer)
        traces = q.run(x, trace=True).traces
        c = np.stack([tm_step_cycles(t.input_spikes, la.n_neurons, pk, events)
                      for t, la, pk in zip(traces, q.layers, p)])
        waits = sum((scan_cycles(t.input_spikes, events) + 2).sum(axis=0) for t in traces[1:])
        # + the readout's argmax, one class a cycle: max(C - 1, 1) cycles instead of 1 (spike_readout)
        model = _skewed(c) + max(q.spec.n_outputs - 1, 1) - 1
        assert ((report.cycles >= model - 1) & (report.cycles <= model + waits)).all(), (report.cycles, model)


@pytest.mark.rtl
@pytest.mark.slow
def test_every_model_and_reset_time_multiplexed():
    """Both layers time-multiplexed (P < N), saturating, samples back to back, in all 9 modes."""
    for model in ("lif", "syn", "if"):
        for reset in ("subtract", "zero", "none"):
            spec = parse_net_dict({"n_cycles": 8, "n_inputs": 5,
                                   "layer_0": layer(model, 5, reset, threshold=1.5),
                                   "layer_1": layer(model, 3, reset, threshold=0.5)})
            rng = np.random.default_rng(7)
            q = QuantizedNet.from_arrays(spec, [rng.normal(0.3, 2.0, (5, 5)), rng.normal(-0.3, 2.0, (3, 5))],
                                         [1.5, 0.5], {"weights_bw": 4, "neurons_bw": 4, "fp_dec": 1})
            x = random_spikes(1, 8, 3, 5, p=0.6)
            golden = q.run(x, trace=True)
            mem = np.concatenate([t.membrane.ravel() for t in golden.traces])
            assert mem.min() == -8 or mem.max() == 7  # the net reaches saturation
            report = VhdlGenerator(q, neurons_per_cycle=[2, 1]).generate().simulate(x, trace=True)
            assert report.mismatches == 0, f"{model}/{reset}: {report}"


def test_flow_spec_hdl_knobs():
    from spiker.errors import SpecError
    from spiker.flow.spec import parse_flow_spec

    net = {"n_cycles": 5, "n_inputs": 4, "layer_0": layer("lif", 6), "layer_1": layer("lif", 3)}
    spec = parse_flow_spec({"net": net, "hdl": {"events_per_cycle": 1, "neurons_per_cycle": {"layer_0": 2}}})
    assert spec.hdl.neurons_per_cycle == (2, 3) and spec.hdl.events_per_cycle == 1
    again = parse_flow_spec(spec.to_dict())
    assert again.hdl == spec.hdl and again.digest() == spec.digest()
    assert "events_per_cycle" not in parse_flow_spec({"net": net}).to_dict()["hdl"]
    for hdl, key in (({"neurons_per_cycle": [2, 4]}, "hdl.neurons_per_cycle.layer_1"),
                     ({"neurons_per_cycle": "2"}, "hdl.neurons_per_cycle"),
                     ({"events_per_cycle": 3}, "hdl.events_per_cycle")):
        with pytest.raises(SpecError, match=key):
            parse_flow_spec({"net": net, "hdl": hdl})


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(t) for t in ("ghdl", "yosys", "iverilog")),
                    reason="needs ghdl, yosys and iverilog")
@pytest.mark.parametrize("events", [1, 2])
def test_postsynthesis_time_multiplexed_netlist_matches_golden(events):
    """The mapped netlist (weights, state and event list in inferred memories) in iverilog, back to back."""
    from spiker.hdl.resources import postsynth_simulate

    q = random_net(11)  # 6-7-8, lif/zero then if/zero
    x = random_spikes(2, 8, 6, q.spec.n_inputs)
    design = VhdlGenerator(q, events_per_cycle=events, neurons_per_cycle=[3, 2]).generate()
    report = postsynth_simulate(design, x, progress=False)
    assert report.samples == 6 and report.mismatches == 0
    np.testing.assert_array_equal(report.counts, q.run(x).counts)
    assert report.resources.latches == 0
