"""Flow overhead: the digits flow through ``spiker run`` (gateway + gRPC + store) vs. the library in-process.

Both sides run the same spec from scratch (no cache: a fresh store for ``spiker run``, a fresh
output folder for the library), one after the other in this run:

* library: ``spiker.flow.stages`` train -> optimize/select -> hdl (resources as the spec says)
  -> simulate, timed per stage in this process;
* gateway: ``spiker -q run SPEC --store <fresh> --no-cache`` as a subprocess (process start,
  the four services and the gateway on loopback, upload of nothing, report and file copies
  included), per-stage seconds from its report.json.

Prints the wall time per stage of both and the ratio of the totals (target <= 1.10x).
``--quick`` shrinks the spec (3 epochs, a 2x2x2 sweep, 100 samples, no resource estimate) for a
fast check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("train", "optimize", "hdlgen", "synth", "simulate")


def quick_spec(spec: dict) -> dict:
    spec = dict(spec)
    spec["train"] = {**spec.get("train", {}), "epochs": 3}
    spec["optimize"] = {"weights_bw": {"min": 5, "max": 6}, "neurons_bw": {"min": 8, "max": 9},
                        "fp_dec": {"min": 3, "max": 4}, "workers": spec.get("optimize", {}).get("workers", 1)}
    spec["select"] = {"max_accuracy_drop": 0.05}
    spec["simulate"] = {**spec.get("simulate", {}), "samples": 100}
    spec["hdl"] = {"resources": False}
    return spec


def run_library(spec_path: Path, out: Path) -> dict[str, float]:
    """The stages in this process through the library; seconds per stage."""
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(spec_path)
    times = {}
    t = time.perf_counter()
    stages.train(spec, out, progress=False)
    times["train"] = time.perf_counter() - t
    t = time.perf_counter()
    if spec.select.optim_params is None:
        stages.optimize(spec, out, progress=False)
    stages.select(spec, out, progress=False)
    times["optimize"] = time.perf_counter() - t
    t = time.perf_counter()
    stages.hdl(spec, out, progress=False, resources=spec.hdl.resources)
    times["hdlgen"] = time.perf_counter() - t  # with the resource estimate: the library has no synth stage
    times["synth"] = 0.0
    t = time.perf_counter()
    stages.simulate(spec, out, progress=False)
    times["simulate"] = time.perf_counter() - t
    return times


def run_gateway(spec_path: Path, store: Path, out: Path) -> tuple[dict[str, float], float, dict]:
    """``spiker run`` as a subprocess; per-stage seconds from its report, total wall time."""
    cmd = [sys.executable, "-m", "spiker_app", "-q", "run", str(spec_path), "--store", str(store),
           "--out", str(out), "--no-cache"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**_env(), "SPIKER_S3_ENDPOINT": ""})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"spiker run failed with exit code {proc.returncode}")
    report = json.loads((out / "report.json").read_text())
    return {name: report["stages"].get(name, {}).get("seconds", 0.0) for name in STAGES}, wall, report


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "examples" / "digits.yaml"), help="flow spec")
    parser.add_argument("--quick", action="store_true", help="3 epochs, 8-config sweep, 100 samples, no resources")
    parser.add_argument("--gateway-first", action="store_true", help="run the gateway side first")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flow-overhead-") as tmp:
        tmpdir = Path(tmp)
        spec = yaml.safe_load(Path(args.spec).read_text())
        if args.quick:
            spec = quick_spec(spec)
        spec_path = tmpdir / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        sides = ["library", "gateway"]
        if args.gateway_first:
            sides.reverse()
        results: dict[str, tuple[dict[str, float], float]] = {}
        for side in sides:
            print(f"running the {side} side ...", file=sys.stderr, flush=True)
            if side == "library":
                t = time.perf_counter()
                per_stage = run_library(spec_path, tmpdir / "lib")
                results[side] = (per_stage, time.perf_counter() - t)
            else:
                per_stage, wall, report = run_gateway(spec_path, tmpdir / "store", tmpdir / "gw-out")
                results[side] = (per_stage, wall)
                print(f"gateway report: hw_accuracy {report['hw_accuracy']}, mismatches {report['mismatches']} on "
                      f"{report['samples']}, cycles_mean {report['cycles_mean']}", file=sys.stderr)
    lib, lib_total = results["library"]
    gw, gw_total = results["gateway"]
    print(f"{'stage':10s} {'library s':>10s} {'gateway s':>10s} {'ratio':>7s}")
    for name in STAGES:
        ratio = f"{gw[name] / lib[name]:6.2f}x" if lib[name] > 0 else "      -"
        print(f"{name:10s} {lib[name]:10.2f} {gw[name]:10.2f} {ratio}")
    print("(library hdlgen includes the resource estimate; the gateway runs it as synth, beside hdlgen and simulate)")
    print(f"{'total':10s} {lib_total:10.2f} {gw_total:10.2f} {gw_total / lib_total:6.2f}x  "
          f"(gateway total = whole `spiker run` process; target <= 1.10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
