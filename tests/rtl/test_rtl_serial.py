"""The time-multiplexed layer snn_layer_tm (NEURONS_PER_CYCLE < N_OUT) in GHDL (cocotb) against the golden model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from spiker.golden import QuantizedNet
from spiker.hdl.generator import render_package
from spiker.hdl.multiplex import scan_cycles, tm_step_cycles
from spiker.net.spec import parse_net_dict

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from hdl_nets import layer, layer_wrapper  # noqa: E402
from rtl_run import run_cocotb  # noqa: E402


def _run(tmp_path: Path, vectors: dict, extra: list[Path]) -> None:
    run_cocotb(tmp_path, "layer_wrap", "cocotb_serial", vectors, extra, "snn_layer_tm_matches_golden")


# case: model, reset, n_in, n_out, P, E, config, stall, saturates
CASES = {
    "lif-subtract-sat-stall": ("lif", "subtract", 9, 6, 2, 2, {"weights_bw": 4, "neurons_bw": 4, "fp_dec": 1},
                               True, True),
    "lif-zero-partial": ("lif", "zero", 10, 7, 3, 1, {"weights_bw": 3, "neurons_bw": 5, "fp_dec": 1}, False, False),
    "lif-none-p1": ("lif", "none", 5, 4, 1, 2, {"weights_bw": 4, "neurons_bw": 4, "fp_dec": 1}, False, True),
    "syn-zero": ("syn", "zero", 12, 5, 2, 2, {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3}, False, False),
    "syn-subtract-stall": ("syn", "subtract", 16, 12, 3, 1, {"weights_bw": 8, "neurons_bw": 8, "fp_dec": 4},
                           True, False),
    "syn-none-sat": ("syn", "none", 7, 6, 4, 2, {"weights_bw": 4, "neurons_bw": 4, "fp_dec": 1}, True, True),
    "if-none-1in": ("if", "none", 1, 4, 1, 2, {"weights_bw": 6, "neurons_bw": 6, "fp_dec": 2}, True, True),
    "if-subtract-full": ("if", "subtract", 8, 5, 5, 2, {"weights_bw": 5, "neurons_bw": 6, "fp_dec": 2}, False, False),
    "if-zero-stall": ("if", "zero", 11, 9, 4, 1, {"weights_bw": 4, "neurons_bw": 5, "fp_dec": 1}, True, False),
    # more inputs than one scan window (16): three windows, the last one partial
    "lif-subtract-windows": ("lif", "subtract", 40, 9, 4, 2, {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 2},
                             False, False),
    "syn-zero-windows-stall": ("syn", "zero", 37, 6, 5, 1, {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 2},
                               True, False),
}


def _one_layer_net(model: str, reset: str, n_in: int, n_out: int, cfg: dict, seed: int) -> QuantizedNet:
    spec = parse_net_dict({"n_cycles": 20, "n_inputs": n_in,
                           "layer_0": layer(model, n_out, reset, threshold=1.0)})
    rng = np.random.default_rng(seed)
    scale = (1 << (cfg["weights_bw"] - 1)) / (1 << cfg["fp_dec"])
    w = rng.normal(0.2 * scale, scale, (n_out, n_in))
    return QuantizedNet.from_arrays(spec, [w], [1.0], cfg)


@pytest.mark.parametrize("case", list(CASES))
def test_snn_layer_tm(tmp_path, case):
    model, reset, n_in, n_out, p, events, cfg, stall, saturates = CASES[case]
    q = _one_layer_net(model, reset, n_in, n_out, cfg, seed=len(case))
    rng = np.random.default_rng(n_in + p)
    x = (rng.random((7, 3, n_in)) < rng.uniform(0.2, 0.7)).astype(np.uint8)
    x[2, 0] = 0  # a step without spikes
    x[3, 0] = 0
    x[3, 0, n_in - 1] = 1  # a step with one spike
    if n_in >= 3:
        x[4, 0] = 0
        x[4, 0, [0, n_in - 1]] = 1  # two spikes
        x[5, 0] = 0
        x[5, 0, :3] = 1  # three spikes
    x[6, 1] = 1  # every input spikes
    x[1, 2] = 0  # an empty step inside the last sample
    g = q.run(x, trace=True).traces[0]
    mem = g.membrane
    nb = cfg["neurons_bw"]
    lim = 1 << (nb - 1)
    if saturates:  # the case drives a membrane to a saturation bound
        assert mem.max() == lim - 1 or mem.min() == -lim, (mem.min(), mem.max())
    syn = g.synapse if g.synapse is not None else np.zeros_like(mem)
    tokens, expected, busy = [], [], 0
    for b in range(3):
        for t in range(7):
            tokens.append([int(sum(int(x[t, b, i]) << i for i in range(n_in))), int(t == 6)])
            expected.append([int(sum(int(g.spikes[t, b, j]) << j for j in range(n_out))),
                             mem[t, b].astype(int).tolist(), syn[t, b].astype(int).tolist()])
            busy += int(tm_step_cycles(x[t, b], n_out, p, events))
    pkg = tmp_path / "pkg.vhd"
    pkg.write_text(render_package(q))
    wrap = tmp_path / "layer_wrap.vhd"
    wrap.write_text(layer_wrapper("snn_layer_tm", q, EVENTS_PER_CYCLE=events, NEURONS_PER_CYCLE=p))
    # model_cycles: first accept (after the first step's scan) to the last update (one cycle before
    # the next step would start)
    first_scan = int(scan_cycles(x[0, 0], events))
    _run(tmp_path, {"nb": nb, "n_out": n_out, "tokens": tokens, "expected": expected, "seed": 3,
                    "stall": stall, "syn": model == "syn", "model_cycles": busy - first_scan - 2}, extra=[pkg, wrap])
