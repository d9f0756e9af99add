"""Measure designs with the project's yosys flow, fit the cost model, print its error table.

    python scripts/fit_cost_model.py --measure PLAN     # synthesize the plan's configs not yet cached
    python scripts/fit_cost_model.py --fit              # refit spiker/optimize/cost_coefficients.json
    python scripts/fit_cost_model.py --check            # estimate vs yosys table (+ leave-one-out)

A point is ``NET:wb/nb/fp:E[:P][:lean]`` (e.g. ``P1:6/10/4:2``, ``P1:6/10/4:2:16`` with 16 neuron
units per layer, ``P1:6/10/4:1:lean`` without the row register, ``row_register=False``).
Nets: ``digits`` (the trained digits example, trained into runs/digits if missing),
``P1``/``P2``/``P3`` (the seed tool's reference nets by the recipe of
../shared/reference/spiker-peer.md) and small calibration nets ``S<n_in>x<n>`` (same recipe,
``S16x24`` is 16-24-10). Measured points are cached in
spiker/optimize/cost_data.json with the digest of the design they were synthesized from (its
generated files and the RTL files it uses): a point whose design the generator now makes
differently is stale, measured afresh by --measure and left out of --fit/--check. Synthesis is slow:
run ``--measure`` under ``nice`` in the background.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spiker.golden import FixedPointConfig, QuantizedNet  # noqa: E402
from spiker.net.spec import parse_net_dict  # noqa: E402
from spiker.optimize.cost_model import (  # noqa: E402
    COEFFICIENTS_PATH,
    DATA_PATH,
    RESOURCES,
    CostModel,
    LayerShape,
    design_digest,
    design_features,
    median,
    relative_error,
    rtl_version,
    shapes_of_quantized,
)

log = logging.getLogger("fit_cost_model")

REFERENCE = {"P1": (64, 128, 10, 25), "P2": (40, 128, 10, 73), "P3": (784, 128, 10, 25)}
PLANS = {
    # small nets: seconds to minutes each, they pin the per-neuron and per-input coefficients
    "small": ["S16x24:6/8/4:2", "S32x48:4/8/3:1", "S24x64:8/12/5:2"],
    # the issue's nets: the digits example and the reference nets (P1-P3 of the seed tool)
    "digits": ["digits:4/6/4:1", "digits:4/6/4:2", "digits:6/10/4:2", "digits:8/12/6:1"],
    "reference": ["P1:6/10/4:2", "P1:6/10/4:1", "P1:4/8/3:2", "P2:6/10/4:2", "P2:6/10/4:1", "P3:6/10/4:1",
                  "P3:6/10/4:2"],
    # time-multiplexed layers (P neuron units per layer)
    "serial": ["P1:6/10/4:2:16", "P2:6/10/4:1:32", "digits:4/6/4:1:16", "S24x64:8/12/5:2:16"],
    # the calibration set of docs/cost-model.md: every block (parallel and time-multiplexed layers,
    # E = 1 and 2, LUT and block RAM weight memories, the windowed scan) on the issue's four nets
    # plus the one net whose ROM is in LUTs, ordered so that the first 12 cover the four nets
    "refit": ["S16x24:6/8/4:2", "digits:4/6/4:1:16", "P1:6/10/4:2:16", "P2:6/10/4:1:32", "P3:6/10/4:1",
              "digits:4/6/4:1", "P1:6/10/4:1", "P2:6/10/4:1", "digits:4/6/4:2", "P1:6/10/4:2", "P2:6/10/4:2",
              "digits:8/12/6:1", "P3:6/10/4:2", "P1:6/10/4:1:lean", "digits:4/6/4:1:lean"],
}


def _layer(n: int, reset: str = "subtract") -> dict:
    return {"neuron_model": "lif", "n_neurons": n, "beta": 0.9375, "threshold": 1.0, "reset_mechanism": reset}


def recipe_net(n_in: int, n_hidden: int, n_out: int, n_cycles: int, config: FixedPointConfig) -> QuantizedNet:
    """The reference recipe: seed 0, default ``nn.Linear`` init times 4, LIF beta 0.9375, threshold 1."""
    import torch

    spec = parse_net_dict({"n_cycles": n_cycles, "n_inputs": n_in, "layer_0": _layer(n_hidden),
                           "layer_1": _layer(n_out)})
    torch.manual_seed(0)
    fc1 = torch.nn.Linear(n_in, n_hidden, bias=False)
    fc2 = torch.nn.Linear(n_hidden, n_out, bias=False)
    weights = [4 * fc.weight.detach().double().numpy() for fc in (fc1, fc2)]
    return QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], config)


def digits_net(config: FixedPointConfig) -> QuantizedNet:
    from spiker.flow import load_flow_spec, stages
    from spiker.golden import quantize

    spec = load_flow_spec(ROOT / "examples" / "digits.yaml")
    snn, _ = stages.train(spec, ROOT / "runs" / "digits", progress=False)
    return quantize(snn, config)


def build(net: str, config: FixedPointConfig) -> QuantizedNet:
    if net == "digits":
        return digits_net(config)
    if net in REFERENCE:
        return recipe_net(*REFERENCE[net], config=config)
    if net.startswith("S") and "x" in net:
        n_in, n_hidden = (int(v) for v in net[1:].split("x"))
        return recipe_net(n_in, n_hidden, 10, 25, config)
    raise SystemExit(f"unknown net {net!r}: digits, P1, P2, P3 or S<n_in>x<n_hidden>")


def parse_point(text: str) -> dict:
    try:
        net, bits, events, *rest = text.split(":")
        wb, nb, fp = (int(v) for v in bits.split("/"))
        lean = bool(rest) and rest[-1] == "lean"
        rest = rest[:-1] if lean else rest
        if len(rest) > 1:
            raise ValueError
        point = {"net": net, "weights_bw": wb, "neurons_bw": nb, "fp_dec": fp, "events_per_cycle": int(events),
                 "neurons_per_cycle": int(rest[0]) if rest else None}
        return {**point, "row_register": False} if lean else point
    except ValueError:
        raise SystemExit(f"bad point {text!r}: expected NET:wb/nb/fp:E[:P][:lean], e.g. P1:6/10/4:2") from None


def point_id(p: dict) -> str:
    p_part = "" if p.get("neurons_per_cycle") is None else f":{p['neurons_per_cycle']}"
    lean = "" if p.get("row_register", True) else ":lean"
    return f"{p['net']}:{p['weights_bw']}/{p['neurons_bw']}/{p['fp_dec']}:{p['events_per_cycle']}{p_part}{lean}"


def generate(p: dict):
    """The design of point ``p`` as the generator makes it now."""
    from spiker.hdl import VhdlGenerator

    config = FixedPointConfig(p["weights_bw"], p["neurons_bw"], p["fp_dec"])
    knobs = {"events_per_cycle": p["events_per_cycle"], "row_register": p.get("row_register", True)}
    if p.get("neurons_per_cycle") is not None:
        knobs["neurons_per_cycle"] = p["neurons_per_cycle"]
    return VhdlGenerator(build(p["net"], config), **knobs).generate()


def current_points(points: list[dict]) -> list[dict]:
    """The measured points whose design the generator still makes (same digest)."""
    out, digests = [], {}
    for d in points:
        if d["id"] not in digests:
            digests[d["id"]] = design_digest(generate(d))
        if d.get("design") == digests[d["id"]]:
            out.append(d)
    return out


DATA = {"path": DATA_PATH}


def load_data() -> dict:
    if DATA["path"].is_file():
        return json.loads(DATA["path"].read_text())
    return {"points": []}


def save_data(data: dict) -> None:
    DATA["path"].write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def measure(points: list[dict], version: str, timeout: float) -> None:
    for p in points:
        try:
            design = generate(p)
        except (TypeError, ValueError) as exc:  # e.g. a knob this generator does not have yet
            log.error("%s: cannot generate: %s", point_id(p), exc)
            continue
        digest = design_digest(design)
        data = load_data()  # re-read: another measure run may have added points
        if any(d["id"] == point_id(p) and d.get("design") == digest for d in data["points"]):
            log.info("%s: cached", point_id(p))
            continue
        qnet = design.quantized
        log.info("%s: synthesizing %s", point_id(p), "-".join(map(str, qnet.spec.sizes)))
        started = time.perf_counter()
        res = design.estimate_resources(timeout=timeout)
        seconds = time.perf_counter() - started
        record = {"id": point_id(p), "rtl": version, "design": digest, **p, "sizes": qnet.spec.sizes,
                  "n_cycles": qnet.spec.n_cycles, "models": [la.neuron_model for la in qnet.spec.layers],
                  "reg_bits": [sh.reg_bits for sh in shapes_of_quantized(qnet)],
                  "lut": res.lut, "ff": res.ff, "bram": res.bram, "dsp": res.dsp, "carry": res.carry,
                  "lutram": res.lutram, "seconds": round(seconds, 1)}
        data = load_data()
        data["points"] = [d for d in data["points"] if not (d["id"] == record["id"] and d.get("design") == digest)]
        data["points"].append(record)
        save_data(data)
        log.info("%s: %d LUT, %d FF, %s BRAM in %.0f s", record["id"], res.lut, res.ff, res.bram, seconds)


def shapes(point: dict) -> list[LayerShape]:
    sizes = point["sizes"]
    models = point.get("models") or ["lif"] * (len(sizes) - 1)
    regs = point.get("reg_bits") or [None] * (len(sizes) - 1)
    return [LayerShape(sizes[i], sizes[i + 1], models[i], regs[i]) for i in range(len(sizes) - 1)]


def features(point: dict, bram_min_bits: float) -> tuple[dict, dict, float]:
    config = FixedPointConfig(point["weights_bw"], point["neurons_bw"], point["fp_dec"])
    return design_features(shapes(point), point["n_cycles"], config, point["events_per_cycle"],
                           point.get("neurons_per_cycle"), bram_min_bits, point.get("row_register", True))


def bram_threshold(points: list[dict]) -> float:
    """The smallest memory the resource flow marks for block RAM (``BLOCK_RAM_MIN_BITS`` of
    spiker.hdl.resources); infinity when the flow has no such rule and no point used block RAM."""
    from spiker.hdl import resources

    rule = getattr(resources, "BLOCK_RAM_MIN_BITS", None)
    if rule is not None:
        return float(rule)
    return 0.0 if any(p["bram"] > 0 for p in points) else float(np.inf)


def fit(points: list[dict], version: str) -> CostModel:
    """Non-negative least squares on relative errors, one fit per resource."""
    from scipy.optimize import nnls

    if not points:
        raise SystemExit(f"no measured points for RTL {version}; run --measure first")
    bram_min = bram_threshold(points)
    coefficients = {}
    for index, resource in enumerate(RESOURCES):
        feats = [features(p, bram_min)[index] for p in points]
        names = sorted({k for f in feats for k in f})
        a = np.array([[f.get(k, 0.0) for k in names] for f in feats])
        y = np.array([float(p[resource]) for p in points])
        w = 1.0 / np.maximum(y, 1.0)
        coef, _ = nnls(a * w[:, None], y * w)
        coefficients[resource] = {k: round(float(c), 6) for k, c in zip(names, coef)}
    return CostModel(coefficients, bram_min, version,
                     meta={"points": len(points), "fitted": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})


def estimate(model: CostModel, p: dict):
    return model.estimate(shapes(p), p["n_cycles"], FixedPointConfig(p["weights_bw"], p["neurons_bw"], p["fp_dec"]),
                          p["events_per_cycle"], p.get("neurons_per_cycle"), p.get("row_register", True))


def table(points: list[dict], model: CostModel, loo: bool) -> str:
    rows, errs = [], {r: [] for r in (*RESOURCES, "bram", "loo_lut", "loo_ff")}
    head = (f"{'point':<22} {'sizes':<13} {'LUT est':>8} {'LUT yosys':>9} {'err':>6}  {'FF est':>7} "
            f"{'FF yosys':>8} {'err':>6}  {'BRAM est':>8} {'yosys':>5}" + ("  LOO LUT/FF err" if loo else ""))
    for i, p in enumerate(points):
        est = estimate(model, p)
        e_lut, e_ff = relative_error(est.lut, p["lut"]), relative_error(est.ff, p["ff"])
        errs["lut"].append(e_lut)
        errs["ff"].append(e_ff)
        errs["bram"].append(abs(est.bram - p["bram"]))
        line = (f"{p['id']:<22} {'-'.join(map(str, p['sizes'])):<13} {est.lut:>8} {p['lut']:>9} "
                f"{100 * e_lut:>5.1f}%  {est.ff:>7} {p['ff']:>8} {100 * e_ff:>5.1f}%  {est.bram:>8} {p['bram']:>5}")
        if loo and len(points) > 3:
            other = fit(points[:i] + points[i + 1:], model.version)
            o = estimate(other, p)
            errs["loo_lut"].append(relative_error(o.lut, p["lut"]))
            errs["loo_ff"].append(relative_error(o.ff, p["ff"]))
            line += f"  {100 * errs['loo_lut'][-1]:5.1f}% / {100 * errs['loo_ff'][-1]:5.1f}%"
        rows.append(line)
    summary = (f"{len(points)} points; LUT error median {100 * median(errs['lut']):.1f}% worst "
               f"{100 * max(errs['lut']):.1f}%; FF error median {100 * median(errs['ff']):.1f}% worst "
               f"{100 * max(errs['ff']):.1f}%; BRAM |est - yosys| worst {max(errs['bram']):g}")
    if errs["loo_lut"]:
        summary += (f"\nleave-one-out (each point predicted by a fit without it): LUT median "
                    f"{100 * median(errs['loo_lut']):.1f}% worst {100 * max(errs['loo_lut']):.1f}%; FF median "
                    f"{100 * median(errs['loo_ff']):.1f}% worst {100 * max(errs['loo_ff']):.1f}%")
    return "\n".join([head, *rows, summary])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", nargs="*", metavar="PLAN_OR_POINT",
                        help=f"plans ({', '.join(PLANS)}) or points NET:wb/nb/fp:E to synthesize")
    parser.add_argument("--fit", action="store_true", help="refit and write the coefficients")
    parser.add_argument("--check", action="store_true", help="print the estimate vs yosys table")
    parser.add_argument("--loo", action="store_true", help="with --check: leave-one-out errors too")
    parser.add_argument("--rtl", help="use the points of this RTL version (default: the points whose design "
                                      "the generator still makes)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per synthesis")
    parser.add_argument("--data", type=Path, default=DATA_PATH, help=f"measured points (default {DATA_PATH})")
    parser.add_argument("--out", type=Path, default=COEFFICIENTS_PATH, help="coefficients file --fit writes")
    args = parser.parse_args(argv)
    DATA["path"] = args.data
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    version = args.rtl or rtl_version()
    if args.measure is not None:
        points = []
        for item in args.measure or ["small"]:
            points += [parse_point(t) for t in PLANS.get(item, [item])]
        measure(points, version, args.timeout)
    stored = load_data()["points"]
    points = [p for p in stored if p["rtl"] == args.rtl] if args.rtl else current_points(stored)
    if len(points) < len(stored) and not args.rtl:
        print(f"note: {len(stored) - len(points)} of {len(stored)} measured points are stale (the generator now "
              "makes their designs differently): --measure them again, or pick a version with --rtl")
    if args.fit:
        model = fit(points, version)
        model.save(args.out)
        print(f"wrote {args.out} from {len(points)} points of RTL {version}")
    if args.check:
        model = CostModel.load(args.out)
        if model.version != version:
            print(f"note: coefficients are for RTL {model.version}, points for {version}")
        print(table(points, model, args.loo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
