"""GHDL co-simulation throughput and cycles per inference of the event-driven accelerator.

For the trained digits example (64-128-10, 25 steps, rate-coded digits test samples, at the
config its sweep selects; trained into runs/digits first when missing) and a 784-128-10 net
(25 steps, Bernoulli p=0.2 inputs, random weights), it prints cycles per inference against

* the event-driven bound ``sum_t max_l a_l(t)`` (target <= 1.2x), and
* the scan-every-input cost model ``6 + sum_t max_l(3 + e_l(t)(N_in,l + 2))``
  (e_l(t) = 1 when layer l has an input event at step t; target <= 0.2x),

on the same spikes, plus GHDL simulated cycles per wall second and samples per second
with 1 and 2 workers. Every run is checked bit-exact (0 mismatches) against the golden model.
The layers visit ``--events`` present spikes per cycle (2, the default: dual-port weight
ROM; 1: single port), so with 2 the ratio to the one-spike-a-cycle bound is below 1.

    .venv/bin/python bench/sim_throughput.py [--samples 20] [--trace] [--events 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.hdl.sim import active_inputs, event_cycles
from spiker.net.spec import parse_net_dict

CONFIG = {"weights_bw": 6, "neurons_bw": 8, "fp_dec": 4}


def _layer(n: int, reset: str) -> dict:
    return {"neuron_model": "lif", "n_neurons": n, "alpha": None, "learn_alpha": False, "beta": 0.9375,
            "learn_beta": False, "threshold": 1.0, "learn_threshold": False, "reset_mechanism": reset}


def net(sizes: list[int], seed: int) -> QuantizedNet:
    spec = parse_net_dict({"n_cycles": 25, "n_inputs": sizes[0], "layer_0": _layer(sizes[1], "subtract"),
                           "layer_1": _layer(sizes[2], "none")})
    rng = np.random.default_rng(seed)
    # random weights ~ N(0.05, 2/sqrt(fan_in)); untrained, so the hidden layer is far denser than a trained one
    weights = [rng.normal(0.05, 2.0 / np.sqrt(sizes[i]), (sizes[i + 1], sizes[i])) for i in range(2)]
    return QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], CONFIG)


def digits_spikes(n: int) -> tuple[np.ndarray, np.ndarray]:
    from spiker import data

    _, test = data.load("digits", n_cycles=25, batch_size=n, seed=0)
    x, y = data.split_batch(next(iter(test)))
    return x[:, :n].numpy().astype(np.uint8), y[:n].numpy()


def trained_digits() -> QuantizedNet:
    """The digits example as the flow builds it: trained, swept, at the selected config."""
    from pathlib import Path

    from spiker.flow import load_flow_spec, stages
    from spiker.golden import quantize

    spec = load_flow_spec("examples/digits.yaml")
    out = Path("runs/digits")
    snn, _ = stages.train(spec, out, progress=False)
    return quantize(snn, stages.select(spec, out, progress=False))


def bench(name: str, q: QuantizedNet, x: np.ndarray, labels, trace: bool, events: int = 2) -> dict:
    design = VhdlGenerator(q, events_per_cycle=events).generate()
    out = {"net": name, "samples": x.shape[1], "events_per_cycle": events}
    for workers in (1, 2):
        spikes = x if labels is None else (x, labels)
        report = design.simulate(spikes if labels is None else [spikes], trace=trace, workers=workers)
        assert report.mismatches == 0, str(report)
        out[f"workers{workers}"] = {"samples_per_s": report.n_samples / report.ghdl_wall_s,
                                    "sim_cycles_per_s": report.sim_cycles_per_s,
                                    "ghdl_wall_s": report.ghdl_wall_s}
    out.update(mismatches=report.mismatches, cycles_mean=report.cycles_mean, cycles_min=report.cycles_min,
               cycles_max=report.cycles_max, bound_mean=report.bound_mean, scan_cost_mean=report.scan_cost_mean,
               ratio_to_bound=float((report.cycles / report.bound).mean()),
               ratio_to_scan=float((report.cycles / report.scan_cost).mean()),
               ratio_to_model=float((report.cycles / (event_cycles(active_inputs(q.run(x, trace=True).traces),
                                                                   events) + len(q.layers) + 3)).mean()),
               hw_accuracy=report.hw_accuracy, golden_accuracy=report.golden_accuracy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--trace", action="store_true", help="also compare every membrane at every step")
    ap.add_argument("--events", type=int, choices=(1, 2), default=2, help="present spikes a layer visits per cycle")
    args = ap.parse_args()
    rows = []
    x, y = digits_spikes(args.samples)
    rows.append(bench("digits 64-128-10 (trained)", trained_digits(), x, y, args.trace, args.events))
    rng = np.random.default_rng(1)
    x = (rng.random((25, args.samples, 784)) < 0.2).astype(np.uint8)
    rows.append(bench("784-128-10 p=0.2", net([784, 128, 10], 1), x, None, args.trace, args.events))
    for r in rows:
        print(f"{r['net']}: {r['samples']} samples, {r['events_per_cycle']} events/cycle, {r['mismatches']} "
              f"mismatches; cycles/inference {r['cycles_mean']:.1f} (min {r['cycles_min']}, max "
              f"{r['cycles_max']}); event-driven bound {r['bound_mean']:.1f} -> ratio {r['ratio_to_bound']:.3f} "
              f"(target <= 1.2); scan-all model {r['scan_cost_mean']:.1f} -> ratio {r['ratio_to_scan']:.3f} "
              f"(target <= 0.2); cycle model sum_t max_l max(ceil(a/E),1)+L+3 -> ratio "
              f"{r['ratio_to_model']:.3f}")
        for w in (1, 2):
            s = r[f"workers{w}"]
            print(f"    workers={w}: {s['samples_per_s']:.2f} samples/s, "
                  f"{s['sim_cycles_per_s']:.0f} simulated cycles/s (GHDL {s['ghdl_wall_s']:.2f} s)")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
