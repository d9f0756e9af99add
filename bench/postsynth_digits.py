"""Post-synthesis proof of the digits accelerator: its yosys netlist in iverilog against the golden model.

The trained digits example at the config its sweep selects (runs/digits, trained when missing)
goes through GHDL synthesis and yosys ``synth_xilinx -flatten`` (0 latches required; weight ROMs in
LUTs, since yosys 0.23 ships no behavioural block RAM model for iverilog); the mapped
netlist then runs in Icarus Verilog with yosys' Xilinx cell models on ``--samples`` test samples
(default 20, streamed back to back) in ``--workers`` vvp processes. Every sample's class counts
and predicted class are compared with the golden model. As the reference, the same samples also
run through the RTL in GHDL in this run, and the ratio of simulated cycles per second is printed.

Gate-level simulation of this net runs at a few cycles per second per vvp process: expect about
an hour with 2 workers on a 2-core machine.

    .venv/bin/python bench/postsynth_digits.py [--samples 20] [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import time

from sim_throughput import trained_digits

from spiker import data
from spiker.hdl import VhdlGenerator
from spiker.hdl.resources import postsynth_simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20, help="digits test samples (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="vvp processes (default 2)")
    parser.add_argument("--keep", default=None, help="keep the synthesis and simulation folder here")
    parser.add_argument("--events", type=int, default=1, help="events per cycle (default 1, the selected mode)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    qnet = trained_digits()
    design = VhdlGenerator(qnet, events_per_cycle=args.events).generate()
    _, test = data.load("digits", n_cycles=qnet.spec.n_cycles, batch_size=64, seed=0)

    started = time.perf_counter()
    rtl = design.simulate(test, n_samples=args.samples, workers=args.workers)
    rtl_s = time.perf_counter() - started
    post = postsynth_simulate(design, test, n_samples=args.samples, keep=args.keep, workers=args.workers,
                              timeout=6 * 3600)

    res = post.resources
    print(f"digits 64-128-10 at {qnet.config}: {res.lut} LUT, {res.ff} FF, {res.carry} CARRY4, {res.bram} BRAM, "
          f"{res.dsp} DSP, {res.latches} latches")
    print(f"RTL in GHDL:          {rtl.n_samples} samples, {rtl.mismatches} mismatches, "
          f"{rtl.simulated_cycles} cycles in {rtl_s:.1f} s ({rtl.sim_cycles_per_s:.0f} cycles/s)")
    gate_rate = post.cycles / post.sim_seconds if post.sim_seconds > 0 else 0.0
    print(f"netlist in iverilog:  {post.samples} samples, {post.mismatches} mismatches, "
          f"{post.cycles} cycles in {post.sim_seconds:.1f} s ({gate_rate:.2f} cycles/s)")
    if rtl.sim_cycles_per_s > 0:
        print(f"gate-level / RTL simulation speed: {gate_rate / rtl.sim_cycles_per_s:.5f}x")
    return 0 if post.mismatches == 0 and rtl.mismatches == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
