"""Area and cycles of the generated accelerator against the seed tool (Spiker) on its three nets.

Builds P1 (64-128-10, T=25), P2 (40-128-10, T=73) and P3 (784-128-10, T=25) by the recipe of
``../shared/reference/spiker-peer.md`` (LIF, beta 0.9375, threshold 1, subtract reset,
``torch.manual_seed(0)`` ``nn.Linear`` weights x4; Bernoulli p=0.2 inputs from
``np.random.default_rng(1)``, shape [K, T+1, N_in], fed as all T+1 steps like Spiker runs
them), generates VHDL at weights_bw 6 / neurons_bw 10 / fp_dec 4 in each mode, runs the
project's resource flow (``design.estimate_resources()``: GHDL synthesis + yosys 0.23
``synth_xilinx``) and a GHDL co-simulation of ``--samples`` samples against the golden model,
and prints per net and mode: P (neurons per cycle), E (events per cycle), LUT, FF, BRAM,
cycles per inference, mismatches and the ratios to Spiker's figures. Spiker's figures are the
RECORDED ones of ``../shared/reference/spiker-peer.json`` (measured on the seed tool's own
output with the same yosys flow), not re-measured here.

Modes: ``N:1`` and ``N:2`` are the fully parallel layer (P = N) with 1 or 2 events a cycle;
``<P>:<E>`` with a number P < N time-multiplexes each layer wider than P (``snn_layer_tm``);
``<P1>/<P2>:<E>`` gives P per layer (the issue's P < N points: ``8/2:2``, ``5/2:2``, ``16/2:2``).
A trailing ``:lean`` builds the fully parallel layers without the register between weight ROM and
neurons (``VhdlGenerator(row_register=False)``: fewer FFs, about 85 instead of 100 MHz on an
ECP5-85F; docs/hardware.md), e.g. ``N:1:lean``.

    .venv/bin/python bench/area_vs_spiker.py [--nets P1,P2,P3] [--modes N:1,N:2,16:1]
                                             [--samples 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.net.spec import parse_net_dict

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "spiker-peer.json"
#: the must-show targets of issue 12 for the fully parallel design (best E)
LUT_FF_TARGET, CYCLES_TARGET = 0.7, 0.2


def _layer(n: int) -> dict:
    return {"neuron_model": "lif", "n_neurons": n, "alpha": None, "learn_alpha": False, "beta": 0.9375,
            "learn_beta": False, "threshold": 1.0, "learn_threshold": False, "reset_mechanism": "subtract"}


def reference_net(peer: dict, name: str) -> QuantizedNet:
    """Net ``name`` of the recipe: sizes, T, weights from torch.manual_seed(0) nn.Linear x4."""
    net = peer["nets"][name]
    sizes = net["sizes"]
    torch.manual_seed(0)
    fcs = [torch.nn.Linear(sizes[i], sizes[i + 1], bias=False) for i in range(2)]
    weights = [fc.weight.detach().double().numpy() * 4 for fc in fcs]
    spec = parse_net_dict({"n_cycles": net["n_cycles"], "n_inputs": sizes[0], "layer_0": _layer(sizes[1]),
                           "layer_1": _layer(sizes[2])})
    return QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], peer["recipe"]["optim_params"])


def reference_inputs(peer: dict, name: str, samples: int) -> np.ndarray:
    """Bernoulli p=0.2 spikes from default_rng(1), [K, T+1, N_in] as the recipe draws them, time-first."""
    net = peer["nets"][name]
    x = np.random.default_rng(1).random((samples, net["n_cycles"] + 1, net["sizes"][0])) < 0.2
    return np.ascontiguousarray(x.transpose(1, 0, 2)).astype(np.uint8)


@dataclass
class Row:
    net: str
    p: str
    e: int
    row_register: bool
    lut: int
    ff: int
    bram: float
    cycles: float
    mismatches: int
    lut_ff_ratio: float
    cycles_ratio: float
    synth_s: float
    sim_s: float


def run_mode(peer: dict, name: str, mode: str, samples: int, keep: Path | None) -> Row:
    p_text, e_text, *lean = mode.split(":")
    if lean not in ([], ["lean"]):
        raise SystemExit(f"bad mode {mode!r}: P:E or P:E:lean")
    events, row_register = int(e_text), not lean
    q = reference_net(peer, name)
    # "8" = P 8 for every layer (capped at a layer's N), "8/2" = P per layer
    npc = None if p_text == "N" else [int(v) for v in p_text.split("/")] if "/" in p_text else int(p_text)
    design = VhdlGenerator(q, events_per_cycle=events, neurons_per_cycle=npc, row_register=row_register).generate()
    started = time.perf_counter()
    res = design.estimate_resources(keep=None if keep is None else keep / f"{name}_{mode.replace(':', '_')}",
                                    timeout=4 * 3600)
    synth_s = time.perf_counter() - started
    started = time.perf_counter()
    report = design.simulate(reference_inputs(peer, name, samples), workers=1)
    sim_s = time.perf_counter() - started
    ref = peer["nets"][name]
    return Row(net=name, p=p_text, e=events, row_register=row_register, lut=res.lut, ff=res.ff, bram=res.bram,
               cycles=report.cycles_mean, mismatches=report.mismatches,
               lut_ff_ratio=(res.lut + res.ff) / (ref["lut"] + ref["ff"]),
               cycles_ratio=report.cycles_mean / ref["cycles"], synth_s=synth_s, sim_s=sim_s)


def table(rows: list[Row], peer: dict) -> str:
    head = (f"{'net':<4} {'P':>4} {'E':>2} {'rows':>4} {'LUT':>7} {'FF':>6} {'BRAM':>5} {'cycles':>8} {'mism':>4} "
            f"{'LUT+FF/Spiker':>13} {'cycles/Spiker':>13}  synth s")
    lines = [head, "-" * len(head)]
    for name in dict.fromkeys(r.net for r in rows):
        ref = peer["nets"][name]
        for r in (r for r in rows if r.net == name):
            rows_text = "reg" if r.row_register else "lean"
            lines.append(f"{r.net:<4} {r.p:>4} {r.e:>2} {rows_text:>4} {r.lut:>7} {r.ff:>6} {r.bram:>5g} "
                         f"{r.cycles:>8.1f} {r.mismatches:>4} {r.lut_ff_ratio:>12.3f}x {r.cycles_ratio:>12.3f}x  "
                         f"{r.synth_s:7.0f}")
        lines.append(f"{name:<4} {'Spiker (recorded)':>20} {ref['lut']:>6} {ref['ff']:>6} {ref['ramb18'] / 2:>5g} "
                     f"{ref['cycles']:>8}")
    return "\n".join(lines)


#: the must-show targets of issue 12 for one time-multiplexed point (P < N) per net
TM_LUT_FF_TARGET, TM_CYCLES_TARGET = 0.35, 1.0


def verdict(rows: list[Row]) -> list[str]:
    """The fully parallel must-show per net: best E by LUT+FF among the P = N rows; and the
    smallest P < N row within the cycle target."""
    out = []
    for name in dict.fromkeys(r.net for r in rows):
        tm = [r for r in rows if r.net == name and r.p != "N" and r.cycles_ratio <= TM_CYCLES_TARGET]
        if tm:
            best = min(tm, key=lambda r: r.lut + r.ff)
            ok = best.lut_ff_ratio <= TM_LUT_FF_TARGET and best.mismatches == 0
            out.append(f"{name}: time-multiplexed P={best.p} E={best.e}: LUT+FF {best.lut_ff_ratio:.3f}x (target <= "
                       f"{TM_LUT_FF_TARGET}), cycles {best.cycles_ratio:.3f}x (<= {TM_CYCLES_TARGET}), "
                       f"{best.mismatches} mismatches -> {'holds' if ok else 'MISSES'}")
    for name in dict.fromkeys(r.net for r in rows):
        full = [r for r in rows if r.net == name and r.p == "N"]
        if not full:
            continue
        best = min(full, key=lambda r: r.lut + r.ff)
        ok = best.lut_ff_ratio <= LUT_FF_TARGET and best.cycles_ratio <= CYCLES_TARGET and best.mismatches == 0
        rows_text = "row register" if best.row_register else "lean (no row register)"
        out.append(f"{name}: fully parallel, best E={best.e}, {rows_text}: LUT+FF {best.lut_ff_ratio:.3f}x (target <= "
                   f"{LUT_FF_TARGET}), cycles {best.cycles_ratio:.3f}x (<= {CYCLES_TARGET}), {best.mismatches} "
                   f"mismatches, {best.bram:g} BRAM (RAMB36 = 1) -> {'holds' if ok else 'MISSES'}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="P1,P2,P3")
    parser.add_argument("--modes", default="N:1:lean,N:1,N:2",
                        help="P:E[:lean], P = N (fully parallel), a number or one per layer (8/2)")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--reference", default=str(REFERENCE))
    parser.add_argument("--keep", default=None, help="keep the synthesis folders under this folder")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    peer = json.loads(Path(args.reference).read_text())
    keep = Path(args.keep) if args.keep else None
    rows = []
    for name in args.nets.split(","):
        for mode in args.modes.split(","):
            row = run_mode(peer, name, mode, args.samples, keep)
            print(f"{row.net} P={row.p} E={row.e}{'' if row.row_register else ' lean'}: {row.lut} LUT, {row.ff} FF, "
                  f"{row.bram:g} BRAM, {row.cycles:.1f} cycles, {row.mismatches} mismatches "
                  f"(synth {row.synth_s:.0f} s)", flush=True)
            rows.append(row)
    print(f"\nSpiker rows are the recorded figures of {args.reference} (T+1 steps fed, as Spiker runs them; "
          "BRAM in RAMB36 units, RAMB18 = 0.5)")
    print(table(rows, peer))
    for line in verdict(rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0 if all(r.mismatches == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
