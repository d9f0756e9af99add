"""Each RTL library block in GHDL (cocotb) against the golden model on random stimuli."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spiker.golden import IntegerArithmetic, QuantizedNet, accumulator_bits, layer_dynamics
from spiker.golden.fixed_point import FixedPointConfig
from spiker.hdl import VhdlGenerator
from spiker.hdl.generator import render_package
from spiker.hdl.interface import TESTBENCH, clog2
from spiker.net.spec import LayerSpec, parse_net_dict

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from hdl_nets import layer, layer_wrapper  # noqa: E402
from rtl_run import run_cocotb  # noqa: E402


def _run(tmp_path: Path, toplevel: str, testcase: str, vectors: dict, extra: list[Path] = (),
         parameters: dict | None = None) -> None:
    run_cocotb(tmp_path, toplevel, "cocotb_blocks", vectors, extra, testcase, parameters)


@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("n_in", [1, 2, 7, 40])
def test_event_scan(tmp_path, n_in, events):
    rng = np.random.default_rng(n_in)
    inputs = [0, (1 << n_in) - 1, 1 << (n_in - 1), 1, (1 << (n_in - 1)) | 1]
    inputs += [int(sum(1 << i for i in range(n_in) if rng.random() < p)) for p in (0.05, 0.3, 0.7) * 10]
    _run(tmp_path, "event_scan", "event_scan_lowest_spike", {"n_in": n_in, "events": events, "inputs": inputs},
         parameters={"N_IN": n_in, "EVENTS": events})


def _wrap_rom(folder: Path, weights: np.ndarray, wb: int, ports: int) -> Path:
    n_out, n_in = weights.shape
    vals = ", ".join(str(int(v)) for v in weights.T.ravel())
    vals = f"(0 => {vals})" if weights.size == 1 else f"({vals})"
    path = folder / "rom_wrap.vhd"
    path.write_text(f"""library ieee; use ieee.std_logic_1164.all; use ieee.numeric_std.all;
use work.spiker_pkg.all;
entity rom_wrap is port (clk : in std_logic; addr, addr2 : in unsigned({clog2(n_in)} - 1 downto 0);
                         row, row2 : out std_logic_vector({n_out * wb} - 1 downto 0)); end entity;
architecture rtl of rom_wrap is begin
  u_rom : entity work.weight_rom generic map (N_IN => {n_in}, N_OUT => {n_out}, WB => {wb}, WEIGHTS => {vals},
                                              BANK_BITS => 16, PORTS => {ports})
      port map (clk => clk, addr => addr, row => row, addr2 => addr2, row2 => row2);
end architecture;
""")
    return path


@pytest.mark.parametrize("shape,wb,ports", [((1, 1), 3, 2), ((20, 9), 7, 2), ((3, 5), 32, 1)])
def test_weight_rom(tmp_path, shape, wb, ports):
    rng = np.random.default_rng(wb)
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    w = rng.integers(lo, hi, size=shape, endpoint=True)
    w.flat[0], w.flat[-1] = lo, hi
    _run(tmp_path, "rom_wrap", "weight_rom_rows", {"wb": wb, "rows": w.T.tolist(), "ports": ports},
         extra=[_wrap_rom(tmp_path, w, wb, ports)])


NEURON_CASES = [(m, r) for m in ("lif", "syn", "if") for r in ("subtract", "zero", "none")]


@pytest.mark.parametrize("model,reset", NEURON_CASES)
def test_neuron_update(tmp_path, model, reset):
    rng = np.random.default_rng(NEURON_CASES.index((model, reset)))  # a fixed seed per case
    nb, wb, n_inputs = 5, 4, 6
    acc = accumulator_bits(n_inputs, wb, nb)
    thr = 5
    spec = LayerSpec(index=0, neuron_model=model, n_inputs=n_inputs, n_neurons=8, threshold=1.0,
                     reset_mechanism=reset, beta_shift=None if model == "if" else 2,
                     alpha_shift=1 if model == "syn" else None)
    span = n_inputs * (1 << (wb - 1))
    currents = torch.from_numpy(rng.integers(-span, span, size=(30, 1, 8), endpoint=True))
    currents[3] = 0
    spk, mem, syn = layer_dynamics(spec, currents, thr, IntegerArithmetic(FixedPointConfig(wb, nb, 2)))
    spk, mem = spk.numpy().astype(int), mem.numpy()
    syn = syn.numpy() if syn is not None else np.zeros_like(mem)
    assert mem.min() == -16 and mem.max() == 15  # saturation at both ends
    cases = []
    for t in range(30):
        for n in range(8):
            prev = (0, 0, 0) if t == 0 else (int(mem[t - 1, 0, n]), int(syn[t - 1, 0, n]),
                                             int(spk[t - 1, 0, n]))
            cases.append([*prev, int(currents[t, 0, n]), int(mem[t, 0, n]), int(syn[t, 0, n]),
                          int(spk[t, 0, n])])
    params = {"NB": nb, "ACC": acc, "MODEL": ("lif", "syn", "if").index(model),
              "RESET": ("subtract", "zero", "none").index(reset), "BETA_SHIFT": -1 if spec.beta_shift is None
              else spec.beta_shift, "ALPHA_SHIFT": -1 if spec.alpha_shift is None else spec.alpha_shift,
              "THRESHOLD": thr}
    _run(tmp_path, "neuron_update", "neuron_update_matches_golden",
         {"nb": nb, "acc": acc, "syn": model == "syn", "cases": cases}, parameters=params)


UNIT_CASES = [(m, r, e, 5) for (m, r), e in zip(NEURON_CASES, (1, 2, 1, 2, 1, 2, 1, 2, 1))]
# the threshold at the membrane's maximum: a saturated-high membrane does not spike
UNIT_CASES += [("lif", "subtract", 1, 15), ("lif", "zero", 2, 15)]


@pytest.mark.parametrize("model,reset,events,thr", UNIT_CASES)
def test_neuron_unit(tmp_path, model, reset, events, thr):
    """neuron_unit (the lean datapath) over 3 samples of random steps that saturate both ways."""
    seed = NEURON_CASES.index((model, reset))
    rng = np.random.default_rng(seed)
    nb, wb, n_inputs = 5, 4, 7
    acc = accumulator_bits(n_inputs, wb, nb)
    k, ka = (None if model == "if" else 1 + seed % 3), (seed % 3 if model == "syn" else None)
    spec = LayerSpec(index=0, neuron_model=model, n_inputs=n_inputs, n_neurons=1, threshold=1.0,
                     reset_mechanism=reset, beta_shift=k, alpha_shift=ka)
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    steps, sat = [], []
    for sample in range(3):
        n_steps = 12
        bias = (hi, lo, 0)[sample]
        events_of = [[int(w) if rng.random() < 0.5 else bias for w in rng.integers(lo, hi, size=int(n), endpoint=True)]
                     for n in rng.integers(0, n_inputs + 1, size=n_steps)]
        events_of[1] = []  # a step without input
        currents = torch.tensor([[[sum(ev)]] for ev in events_of], dtype=torch.int64)
        spk, mem, syn = layer_dynamics(spec, currents, thr, IntegerArithmetic(FixedPointConfig(wb, nb, 2)))
        sat += mem.ravel().tolist()
        for t, ev in enumerate(events_of):
            steps.append([ev, int(t == n_steps - 1),
                          [int(spk[t, 0, 0]), int(mem[t, 0, 0]), 0 if syn is None else int(syn[t, 0, 0])]])
    assert min(sat) == -16 and max(sat) == 15  # saturation at both ends
    params = {"NB": nb, "ACC": acc, "WB": wb, "MODEL": ("lif", "syn", "if").index(model),
              "RESET": ("subtract", "zero", "none").index(reset), "BETA_SHIFT": -1 if k is None else k,
              "ALPHA_SHIFT": -1 if ka is None else ka, "THRESHOLD": thr, "EVENTS": events}
    _run(tmp_path, "neuron_unit", "neuron_unit_matches_golden",
         {"nb": nb, "wb": wb, "events": events, "phases": 3 if model == "syn" else 2,
          "spike_phase": 2 if model == "syn" else 1, "syn": model == "syn", "seed": seed, "steps": steps},
         parameters=params)


def _one_layer_net(model, reset, n_in, n_out, cfg, seed, mean=0.2, std=1.0):
    spec = parse_net_dict({"n_cycles": 20, "n_inputs": n_in,
                           "layer_0": layer(model, n_out, reset, threshold=1.0)})
    rng = np.random.default_rng(seed)
    scale = (1 << (cfg["weights_bw"] - 1)) / (1 << cfg["fp_dec"])
    w = rng.normal(mean * scale, std * scale, (n_out, n_in))
    return QuantizedNet.from_arrays(spec, [w], [1.0], cfg)


LAYER_CASES = {
    "lif-sat-stall": ("lif", "subtract", 9, 6, {"weights_bw": 4, "neurons_bw": 4, "fp_dec": 1}, True),
    "syn-zero": ("syn", "zero", 12, 5, {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3}, False),
    "if-none-1in": ("if", "none", 1, 4, {"weights_bw": 6, "neurons_bw": 6, "fp_dec": 2}, True),
    "lif-zero-1out": ("lif", "zero", 10, 1, {"weights_bw": 3, "neurons_bw": 5, "fp_dec": 1}, False),
    "syn-subtract-wide": ("syn", "subtract", 16, 12, {"weights_bw": 8, "neurons_bw": 8, "fp_dec": 4}, True),
}


@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_snn_layer(tmp_path, case, events):
    _layer_case(tmp_path, case, events)


@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("case", ["lif-sat-stall", "syn-zero", "if-none-1in", "syn-subtract-wide"])
def test_snn_layer_without_row_register(tmp_path, case, events):
    """The lean layer (ROW_REGISTER false: the neurons add the ROM's rows), every model, with and
    without back-pressure."""
    _layer_case(tmp_path, case, events, row_register=False)


@pytest.mark.parametrize("case,events,window", [("lif-sat-stall", 1, 4), ("syn-subtract-wide", 2, 8)])
def test_snn_layer_scan_windows(tmp_path, case, events, window):
    """A wide layer's windowed scan (SCAN_WINDOW < N_IN, the last window partial or full)."""
    _layer_case(tmp_path, case, events, window)


def _layer_case(tmp_path, case, events, window=0, row_register=True):
    model, reset, n_in, n_out, cfg, stall = LAYER_CASES[case]
    q = _one_layer_net(model, reset, n_in, n_out, cfg, seed=len(case))
    rng = np.random.default_rng(n_in)
    x = (rng.random((7, 3, n_in)) < rng.uniform(0.2, 0.7)).astype(np.uint8)
    x[2, 0] = 0  # a step without spikes
    x[3, 0] = 0
    x[3, 0, n_in - 1] = 1  # a step with one spike
    if n_in >= 3:
        x[4, 0] = 0
        x[4, 0, [0, n_in - 1]] = 1  # two spikes (one pair)
        x[5, 0] = 0
        x[5, 0, :3] = 1  # three spikes (a pair and a single)
    x[6, 1] = 1  # every input spikes (odd or even count)
    x[1, 2] = 0  # an empty step inside the last sample
    counts = {int(c) for c in x.sum(axis=-1).ravel()}
    assert {0, 1} <= counts and (n_in < 3 or {2, 3} <= counts)
    g = q.run(x, trace=True).traces[0]
    mem = g.membrane
    nb = cfg["neurons_bw"]
    syn = g.synapse if g.synapse is not None else np.zeros_like(mem)
    tokens, expected = [], []
    for b in range(3):
        for t in range(7):
            tokens.append([int(sum(int(x[t, b, i]) << i for i in range(n_in))), int(t == 6)])
            expected.append([int(sum(int(g.spikes[t, b, j]) << j for j in range(n_out))),
                             mem[t, b].astype(int).tolist(), syn[t, b].astype(int).tolist()])
    pkg = tmp_path / "pkg.vhd"
    pkg.write_text(render_package(q))
    wrap = tmp_path / "layer_wrap.vhd"
    wrap.write_text(layer_wrapper("snn_layer", q, EVENTS_PER_CYCLE=events, SCAN_WINDOW=window,
                                  ROW_REGISTER="true" if row_register else "false"))
    _run(tmp_path, "layer_wrap", "snn_layer_matches_golden",
         {"nb": nb, "n_out": n_out, "tokens": tokens, "expected": expected, "seed": 3, "stall": stall,
          "syn": model == "syn", "events": events, "update": 3 if model == "syn" else 2}, extra=[pkg, wrap])


@pytest.mark.parametrize("n_cls,cb", [(1, 3), (5, 2), (10, 4)])
def test_spike_readout(tmp_path, n_cls, cb):
    rng = np.random.default_rng(n_cls)
    tokens, expected = [], []
    for steps in (1, 5, 9, 4):
        x = (rng.random((steps, n_cls)) < rng.uniform(0, 0.9)).astype(int)
        for t in range(steps):
            tokens.append([int(sum(int(x[t, c]) << c for c in range(n_cls))), int(t == steps - 1)])
        counts = np.minimum(x.sum(axis=0), (1 << cb) - 1)  # counters saturate
        expected.append([int(np.argmax(counts)), counts.tolist()])
    _run(tmp_path, "spike_readout", "spike_readout_counts_and_class",
         {"n_cls": n_cls, "cb": cb, "tokens": tokens, "expected": expected, "n_samples": len(expected),
          "seed": n_cls},
         parameters={"N_CLS": n_cls, "CB": cb})


@pytest.mark.parametrize("events", [1, 2])
def test_core_equal_shape_layers_keep_own_weights(tmp_path, events):
    spec = parse_net_dict({"n_cycles": 8, "n_inputs": 6, "layer_0": layer("lif", 6),
                           "layer_1": layer("lif", 6),
                           "layer_2": layer("syn", 3, "zero")})
    rng = np.random.default_rng(9)
    w = [rng.normal(0.3, 0.8, (6, 6)), rng.normal(-0.1, 0.8, (6, 6)), rng.normal(0.3, 0.8, (3, 6))]
    q = QuantizedNet.from_arrays(spec, w, [1.0, 1.0, 0.5], {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})
    assert not np.array_equal(q.layers[0].weights, q.layers[1].weights)
    design = VhdlGenerator(q, events_per_cycle=events).generate()
    assert f"EVENTS_PER_CYCLE : positive := {events};" in design.files["spiker_net_pkg.vhd"]
    folder = tmp_path / "hdl"
    design.write(folder)
    gen = [folder / name for name in design.generated_files if name != f"{TESTBENCH}.vhd"]
    x = (rng.random((8, 6, 6)) < 0.5).astype(np.uint8)
    golden = q.run(x)
    fmt = design.geometry.format()
    samples = [[int(sum(int(x[t, b, i]) << i for i in range(6))) for t in range(8)] for b in range(6)]
    words = [fmt.encode_result(c, p) for c, p in zip(golden.counts, golden.predictions)]
    _run(tmp_path, design.core, "core_equal_shape_layers",
         {"samples": samples, "words": words, "counts": golden.counts.tolist(), "classes": golden.predictions.tolist(),
          "seed": events}, extra=gen)
