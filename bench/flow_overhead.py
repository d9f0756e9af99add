"""Flow overhead: the digits flow through ``spiker run`` (gateway + gRPC + store) vs. the library in-process.

Both sides run the same spec from scratch (no cache: a fresh store for ``spiker run``, a fresh
output folder for the library), one after the other in this run:

* library: ``spiker.flow.stages`` train -> optimize/select -> hdl (resources as the spec says)
  -> simulate, timed per stage in this process;
* gateway: ``spiker -q run SPEC --store <fresh> --no-cache`` as a subprocess (process start,
  the four services and the gateway on loopback, upload of nothing, report and file copies
  included), per-stage seconds from its report.json.

Prints the wall time per stage of both and the ratio of the totals (target <= 1.10x), and the CPU
seconds of each side with all the processes it started (what the other jobs on a shared machine
inflate least; on Linux, where this process can adopt what ``spiker run`` leaves behind). ``--repeats N``
runs each side N times, interleaved (library, gateway, gateway, library, ...), and prints the
medians, the spread of the per-repeat ratio and the machine's load meanwhile.
``--quick`` shrinks the spec (3 epochs, a 2x2x2 sweep, 100 samples, no resource estimate) for a
fast check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from timing import adopt_orphans, interleaved, measured_load, ratios, reap_orphans, spread

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
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, interleaved (default 1)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    per_stage: dict[str, list[dict[str, float]]] = {"library": [], "gateway": []}
    with tempfile.TemporaryDirectory(prefix="flow-overhead-") as tmp:
        tmpdir = Path(tmp)
        spec = yaml.safe_load(Path(args.spec).read_text())
        if args.quick:
            spec = quick_spec(spec)
        spec_path = tmpdir / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec))

        def library() -> None:
            print("running the library side ...", file=sys.stderr, flush=True)
            per_stage["library"].append(run_library(spec_path, tmpdir / f"lib-{len(per_stage['library'])}"))

        def gateway() -> None:
            print("running the gateway side ...", file=sys.stderr, flush=True)
            n = len(per_stage["gateway"])
            times, _, report = run_gateway(spec_path, tmpdir / f"store-{n}", tmpdir / f"gw-out-{n}")
            left = reap_orphans()  # what `spiker run` left running (its job fork server) ends soon after it
            if left:
                print(f"reaped {left} process(es) `spiker run` left behind", file=sys.stderr)
            per_stage["gateway"].append(times)
            print(f"gateway report: hw_accuracy {report['hw_accuracy']}, mismatches {report['mismatches']} on "
                  f"{report['samples']}, cycles_mean {report['cycles_mean']}", file=sys.stderr)

        sides = {"gateway": gateway, "library": library} if args.gateway_first else \
            {"library": library, "gateway": gateway}
        adopted = adopt_orphans()
        with measured_load() as load:
            runs = interleaved(sides, args.repeats, warm_up=False)
    lib = {name: statistics.median(r[name] for r in per_stage["library"]) for name in STAGES}
    gw = {name: statistics.median(r[name] for r in per_stage["gateway"]) for name in STAGES}
    print(f"{args.repeats} run(s) of each side, interleaved; medians; {load}")
    print(f"{'stage':10s} {'library s':>10s} {'gateway s':>10s} {'ratio':>7s}")
    for name in STAGES:
        ratio = f"{gw[name] / lib[name]:6.2f}x" if lib[name] > 0 else "      -"
        print(f"{name:10s} {lib[name]:10.2f} {gw[name]:10.2f} {ratio}")
    print("(library hdlgen includes the resource estimate; the gateway runs it as synth, beside hdlgen and simulate)")
    wall, cpu = ratios(runs["gateway"], runs["library"])
    median = {side: (statistics.median(r.wall), statistics.median(r.cpu)) for side, r in runs.items()}
    print(f"{'total':10s} {median['library'][0]:10.2f} {median['gateway'][0]:10.2f} {spread(wall, 'x')}  "
          "(gateway total = whole `spiker run` process; target <= 1.10x)")
    if adopted:
        print(f"{'CPU s':10s} {median['library'][1]:10.2f} {median['gateway'][1]:10.2f} {spread(cpu, 'x')}  "
              "(this process and its descendants: GHDL, yosys; `spiker run`, its services and jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
