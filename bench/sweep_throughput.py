"""Sweep throughput: golden-model evaluation per config vs. one float snnTorch pass.

On the trained digits example (trained here if ``runs/digits/model.pt`` is missing):
- reference: one float evaluation pass of the same SpikingNet (snnTorch neurons) over
  the whole test set;
- ours: the mean time per config of the golden integer model over the same test set,
  in the sweep over weights_bw 4..8, neurons_bw 6..12, fp_dec 2..6, with 1 and 2 workers.
Prints the per-config ratio (target <= 1.0x a float pass) and the 2-worker speed-up
(target >= 1.7x).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

import spiker
from spiker.flow import load_flow_spec, stages
from spiker.training import evaluate


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_flush_denormal(True)
    spec = load_flow_spec("examples/digits.yaml")
    snn, _ = stages.train(spec, Path("runs/digits"), progress=False)
    _, test_loader = stages.load_data(spec)

    evaluate(snn, test_loader)  # warm-up
    repeats = 5
    started = time.perf_counter()
    for _ in range(repeats):
        evaluate(snn, test_loader)
    float_pass = (time.perf_counter() - started) / repeats

    walls = {}
    for workers in (1, 2):
        opt = spiker.Optimizer(snn, spec.net, spec.optimize.ranges, n_workers=workers, progress=False)
        started = time.perf_counter()
        result = opt.optimize(test_loader)
        walls[workers] = time.perf_counter() - started
    feasible = result.feasible
    per_config = walls[1] / len(result.rows)
    per_feasible = walls[1] / len(feasible)
    print(f"test set: {result.n_samples} samples x {spec.net_spec.n_cycles} steps; "
          f"{len(result.rows)} configs ({len(feasible)} feasible)")
    print(f"float snnTorch pass:            {1000 * float_pass:8.1f} ms")
    print(f"golden model per config (1 w):  {1000 * per_config:8.1f} ms  "
          f"(per feasible config {1000 * per_feasible:.1f} ms)")
    print(f"ratio golden per config / float pass: {per_config / float_pass:.2f}x "
          f"(per feasible config {per_feasible / float_pass:.2f}x; target <= 1.0x)")
    print(f"sweep wall: 1 worker {walls[1]:.2f}s, 2 workers {walls[2]:.2f}s; "
          f"speed-up {walls[1] / walls[2]:.2f}x (target >= 1.7x)")


if __name__ == "__main__":
    main()
