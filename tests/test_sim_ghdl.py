"""GHDL co-simulation of generated designs against the golden model."""

import re

import numpy as np
import pytest
import torch
from hdl_nets import layer, random_net, random_spikes

from spiker.errors import ToolError
from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.hdl.sim import active_inputs, event_cycles, inference_cycles, layer_fill
from spiker.net.spec import parse_net_dict

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


RANDOM_CASES = [(seed, 2) for seed in range(8)] + [(seed, 1) for seed in (0, 4, 5, 7)]


@pytest.mark.parametrize("seed,events", RANDOM_CASES)
def test_random_nets_are_bit_exact_with_trace(seed, events):
    q = random_net(seed)
    design = VhdlGenerator(q, events_per_cycle=events).generate()
    steps = int(np.random.default_rng(seed).integers(3, 10))
    x = random_spikes(seed, steps=steps, batch=6, n=q.spec.n_inputs)
    report = design.simulate(x, trace=True)
    assert report.mismatches == 0, str(report)
    assert report.first_mismatch is None
    assert report.events_per_cycle == events
    np.testing.assert_array_equal(report.counts, q.run(x).counts)
    # event driven: a layer spends max(a, 1) cycles a step plus its update phases (2, syn 3) and a
    # small pipeline/readout latency
    slack = 4 * steps + layer_fill() * len(q.layers) + q.spec.n_outputs + 4
    assert (report.cycles <= report.bound + slack).all(), (report.cycles, report.bound)
    # ... and max(ceil(a / E), 1) + U with E events a cycle: the model sum_t max_l(...) + F L - 2
    # + max(C - 1, 1) (C classes), give or take a few cycles where the layers' busiest steps do not
    # line up in the pipeline
    models = [layer.spec.neuron_model for layer in q.layers]
    fill = layer_fill() * len(q.layers) - 2 + max(q.spec.n_outputs - 1, 1)
    model = event_cycles(active_inputs(q.run(x, trace=True).traces), events, models=models) + fill
    assert (np.abs(report.cycles - model) <= steps).all(), (report.cycles, model)


def test_two_events_per_cycle_halve_the_busy_steps():
    spec = parse_net_dict({"n_cycles": 6, "n_inputs": 9, "layer_0": layer("lif", 4)})
    q = QuantizedNet.from_arrays(spec, [np.random.default_rng(0).normal(0.2, 1.0, (4, 9))], [1.0],
                                 {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})
    x = np.zeros((6, 2, 9), dtype=np.uint8)
    x[:, 0] = 1                      # 9 spikes a step: 9 cycles vs 5
    x[0, 1, 4] = 1                   # 1, 0, 2, 3, 8, 9 spikes
    x[2, 1, [1, 7]] = 1
    x[3, 1, [0, 5, 8]] = 1
    x[4, 1, :8] = 1
    x[5, 1] = 1
    one = VhdlGenerator(q, events_per_cycle=1).generate().simulate(x, trace=True)
    two = VhdlGenerator(q).generate().simulate(x, trace=True)
    assert one.mismatches == 0 and two.mismatches == 0, (str(one), str(two))
    np.testing.assert_array_equal(one.counts, two.counts)
    a = np.array([[9] * 6, [1, 0, 2, 3, 8, 9]]).T[None]  # a[l, t, b]
    for report, e in ((one, 1), (two, 2)):
        # F L - 2 + max(4 - 1, 1), F = layer_fill() (with the row register)
        np.testing.assert_array_equal(report.cycles, event_cycles(a, e) + layer_fill() - 2 + 3)
    assert (two.bound == one.bound).all() and (two.cycles < one.cycles).all()


@pytest.mark.parametrize("n_in", [100, 128])
def test_grouped_scan_of_a_wide_layer_is_exact(n_in):
    """A layer over several 16-bit scan groups (the last one partial at 100 inputs): spikes in
    one group, in two, spread over all and none; bit exact, and cycles exactly the model's."""
    spec = parse_net_dict({"n_cycles": 7, "n_inputs": n_in, "layer_0": layer("lif", 5)})
    q = QuantizedNet.from_arrays(spec, [np.random.default_rng(3).normal(0.05, 0.4, (5, n_in))], [1.0],
                                 {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})
    x = (np.random.default_rng(n_in).random((7, 4, n_in)) < 0.3).astype(np.uint8)
    x[0, 0] = 0
    x[0, 0, [17, 18, 30]] = 1          # three spikes in one group
    x[1, 0] = 0
    x[1, 0, [3, n_in - 1]] = 1         # the lowest and the highest group
    x[2, 0] = 0                        # none
    x[3, 0] = 0
    x[3, 0, 50] = 1                    # one
    x[4, 0] = 1                        # all
    x[:, 1, :16] = 0                   # the first group always empty
    for e in (1, 2):
        report = VhdlGenerator(q, events_per_cycle=e).generate().simulate(x, trace=True)
        assert report.mismatches == 0, str(report)
        np.testing.assert_array_equal(report.counts, q.run(x).counts)
        a = x.sum(-1)[None]
        np.testing.assert_array_equal(report.cycles, event_cycles(a, e) + layer_fill() - 2 + max(5 - 1, 1))


def test_every_model_and_reset_with_saturation():
    for model in ("lif", "syn", "if"):
        for reset in ("subtract", "zero", "none"):
            spec = parse_net_dict({"n_cycles": 8, "n_inputs": 5,
                                   "layer_0": layer(model, 3, reset, threshold=1.5),
                                   "layer_1": layer(model, 2, reset, threshold=0.5)})
            rng = np.random.default_rng(7)
            q = QuantizedNet.from_arrays(spec, [rng.normal(0.3, 2.0, (3, 5)), rng.normal(-0.5, 2.0, (2, 3))],
                                         [1.5, 0.5], {"weights_bw": 4, "neurons_bw": 4, "fp_dec": 1})
            x = random_spikes(1, 8, 3, 5, p=0.6)
            golden = q.run(x, trace=True)
            mem = np.concatenate([t.membrane.ravel() for t in golden.traces])
            assert mem.min() == -8 or mem.max() == 7  # the net reaches saturation
            report = VhdlGenerator(q).generate().simulate(x, trace=True)
            assert report.mismatches == 0, f"{model}/{reset}: {report}"


@pytest.mark.parametrize("model,reset", [("lif", "subtract"), ("syn", "zero"), ("if", "none")])
def test_lean_layers_without_row_register_are_exact(model, reset):
    """``row_register=False``: bit exact through two layers and the readout (every model and every
    reset once here; all pairs in the cocotb layer blocks), E = 1 and 2; exactly one cycle a layer
    faster than with the row register (layer_fill), and as close to the cycle model as that design."""
    spec = parse_net_dict({"n_cycles": 7, "n_inputs": 20, "layer_0": layer(model, 6, reset, threshold=1.0),
                           "layer_1": layer(model, 4, reset, threshold=0.75)})
    rng = np.random.default_rng(len(model) + len(reset))
    q = QuantizedNet.from_arrays(spec, [rng.normal(0.3, 1.5, (6, 20)), rng.normal(0.1, 1.5, (4, 6))],
                                 [1.0, 0.75], {"weights_bw": 5, "neurons_bw": 6, "fp_dec": 2})
    x = random_spikes(4, 7, 4, 20, p=0.4)
    a = active_inputs(q.run(x, trace=True).traces)
    for e in (1, 2):
        lean = VhdlGenerator(q, events_per_cycle=e, row_register=False).generate()
        assert "ROW_REGISTER : boolean := false" in lean.files["spiker_net_pkg.vhd"] and not lean.row_register
        report = lean.simulate(x, trace=True)
        assert report.mismatches == 0, f"{model}/{reset}/E={e}: {report}"
        np.testing.assert_array_equal(report.counts, q.run(x).counts)
        registered = VhdlGenerator(q, events_per_cycle=e).generate().simulate(x, trace=True)
        assert registered.mismatches == 0
        np.testing.assert_array_equal(registered.cycles - report.cycles, 2 * (layer_fill(True) - layer_fill(False)))
        models = [model] * 2
        lean_model = inference_cycles(a, e, models=models, n_classes=4, row_register=False)
        np.testing.assert_array_equal(report.cycles - lean_model,
                                      registered.cycles - inference_cycles(a, e, models=models, n_classes=4))


def test_corrupted_weight_is_caught_and_located():
    spec = parse_net_dict({"n_cycles": 6, "n_inputs": 6, "layer_0": layer("lif", 4),
                           "layer_1": layer("lif", 3)})
    rng = np.random.default_rng(2)
    w = [rng.normal(0.4, 0.5, (4, 6)), rng.normal(0.4, 0.5, (3, 4))]
    q = QuantizedNet.from_arrays(spec, w, [1.0, 1.0],
                                 {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})
    design = VhdlGenerator(q).generate()
    pkg = design.files["spiker_net_pkg.vhd"]
    # corrupt layer 1's weight from input 2 to neuron 1 (ROM index 2 * 3 + 1)
    m = re.search(r"constant L1_WEIGHTS\s*:[^:]*:= \((.*?)\);", pkg, re.S)
    values = [int(v) for v in re.findall(r"-?\d+", m.group(1))]
    assert values[7] == q.layers[1].weights[1, 2]
    values[7] = values[7] + 5 if values[7] < 0 else values[7] - 9
    bad = design.with_file("spiker_net_pkg.vhd",
                           pkg[:m.start(1)] + ", ".join(map(str, values)) + pkg[m.end(1):])
    x = np.ones((6, 2, 6), dtype=np.uint8)
    report = bad.simulate(x, trace=True)
    assert report.mismatches >= 1
    first = report.first_mismatch
    assert (first.sample, first.layer, first.neuron) == (0, 1, 1)
    assert first.step == 0 and first.what in ("membrane", "spikes")
    assert first.expected_membrane != first.got_membrane
    assert "layer 1, neuron 1" in str(report)


def test_loader_input_accuracy_workers_and_wave(tmp_path):
    q = random_net(11, max_layers=2)
    x = torch.from_numpy(random_spikes(4, 6, 9, q.spec.n_inputs)).float()
    labels = torch.arange(9) % q.spec.n_outputs
    loader = [(x[:, :5], torch.zeros(5), labels[:5]), (x[:, 5:], torch.zeros(4), labels[5:])]
    wave = tmp_path / "s.ghw"
    report = VhdlGenerator(q).generate().simulate(loader, n_samples=7, workers=2, wave=wave, wave_sample=3)
    assert report.n_samples == 7 and report.mismatches == 0
    golden = q.run(x[:, :7].numpy())
    assert report.golden_accuracy == pytest.approx(float((golden.predictions == labels[:7].numpy()).mean()))
    assert report.hw_accuracy == report.golden_accuracy
    assert wave.stat().st_size > 0
    assert report.sim_cycles_per_s > 0 and report.cycles_min <= report.cycles_mean <= report.cycles_max


def test_missing_ghdl_gives_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    design = VhdlGenerator(random_net(0, max_layers=1)).generate()
    with pytest.raises(ToolError, match="apt-get install ghdl"):
        design.simulate(np.zeros((2, 1, design.quantized.spec.n_inputs), dtype=np.uint8))


def test_analysis_failure_reports_ghdl_errors(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    design = VhdlGenerator(random_net(0, max_layers=1)).generate()
    text = design.files["spiker_top.vhd"].replace("end architecture;", "end;;")
    broken = design.with_file("spiker_top.vhd", text)
    before = set(tmp_path.iterdir())
    with pytest.raises(ToolError, match=r"spiker_top.vhd:\d+:\d+"):
        broken.simulate(np.zeros((2, 1, design.quantized.spec.n_inputs), dtype=np.uint8))
    assert set(tmp_path.iterdir()) == before


def test_hung_simulation_times_out():
    design = VhdlGenerator(random_net(0, max_layers=1)).generate()
    with pytest.raises(ToolError, match="did not finish within"):
        design.simulate(np.ones((3, 200, design.quantized.spec.n_inputs), dtype=np.uint8), timeout=0.01)


def test_wide_layer_scans_windows_bit_exact():
    """More than 128 inputs: the fully parallel layer scans its mask in windows of 64 inputs."""
    spec = parse_net_dict({"n_cycles": 5, "n_inputs": 150, "layer_0": layer("lif", 4), "layer_1": layer("if", 3)})
    rng = np.random.default_rng(5)
    q = QuantizedNet.from_arrays(spec, [rng.normal(0.1, 0.3, (4, 150)), rng.normal(0.2, 0.8, (3, 4))], [1.0, 1.0],
                                 {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})
    x = random_spikes(2, 5, 3, 150, p=0.1)
    x[1, 1, :] = 0
    x[1, 1, [0, 63, 64, 149]] = 1  # window edges and the partial last window
    design = VhdlGenerator(q, events_per_cycle=1).generate()
    report = design.simulate(x, trace=True)
    assert report.mismatches == 0, str(report)
