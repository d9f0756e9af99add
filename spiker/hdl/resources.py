"""Resource estimate without a vendor tool, and post-synthesis simulation of the netlist.

Two methods (:data:`METHODS`):

* ``synth``: ``ghdl synth --std=08 --out=verilog`` turns the design into Verilog; yosys
  ``synth_xilinx -flatten`` maps it to 7-series cells (flattened: cross-module constants and
  the debug outputs the layers leave open are optimized away, and ``stat``'s JSON is not valid
  for hierarchical designs in yosys 0.23). A netlist with latches is refused. The counts of a
  real netlist; seconds to minutes (docs/cost-model.md, "Synthesis options" for what was
  measured against it).
* ``fast``: the cost model's calibrated estimate (``spiker.optimize.cost_model.estimate_design``;
  ``design_resources(design, method)`` there picks one), no synthesis, microseconds; the
  :class:`Resources` it returns is labelled as an estimate (``method``, ``note``), never as counts.

:func:`postsynth_simulate` runs the mapped netlist in Icarus Verilog with yosys' own cell
models and compares its outputs with the golden model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spiker import threads
from spiker.errors import ToolError
from spiker.hdl.interface import TEMPLATE_DIR, TOP_PORTS, verilog_connections
from spiker.hdl.sim import collect
from spiker.hdl.tools import error_lines, find_tool, run_tool
from spiker.progress import heartbeat
from spiker.progress import progress as progress_bar

if TYPE_CHECKING:
    from spiker.hdl.design import Design

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    """Cell counts of the mapped netlist (Xilinx 7-series cells as yosys maps them), or with
    ``method == "fast"`` the cost model's estimate of them (``carry``/``lutram``/``latches`` are
    None then: the model does not estimate them; ``note`` says what the numbers are)."""

    lut: int
    ff: int
    carry: int | None
    bram: float          # RAMB36 = 1, RAMB18 = 0.5
    lutram: int | None
    dsp: int
    latches: int | None
    cells: dict[str, int] = field(default_factory=dict)
    method: str = "synth"
    note: str = "yosys synth_xilinx -flatten cell counts"

    @property
    def estimated(self) -> bool:
        """True for the cost model's estimate (no netlist behind the numbers)."""
        return self.method == "fast"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs and the CLI: the counts and what they are."""
        parts = [f"{self.lut} LUT", f"{self.ff} FF"] + ([f"{self.carry} carry"] if self.carry is not None else [])
        parts += [f"{self.bram:g} BRAM", f"{self.dsp} DSP"]
        return ", ".join(parts) + f" ({self.note})"


def classify(cells: dict[str, int]) -> Resources:
    lut = ff = carry = lutram = dsp = latches = 0
    bram = 0.0
    for name, count in cells.items():
        if re.fullmatch(r"LUT[1-6]", name):
            lut += count
        elif re.fullmatch(r"FD[CPRS]E?(_1)?", name):
            ff += count
        elif name.startswith("CARRY"):
            carry += count
        elif name.startswith("RAMB36"):
            bram += count
        elif name.startswith("RAMB18"):
            bram += 0.5 * count
        elif re.match(r"RAM\d+|RAM[SD]\d+|ROM\d+", name):
            lutram += count
        elif name.startswith("DSP"):
            dsp += count
        elif name.startswith("LD") or "DLATCH" in name.upper() or "$dlatch" in name:
            latches += count
    return Resources(lut=lut, ff=ff, carry=carry, bram=bram, lutram=lutram, dsp=dsp, latches=latches,
                     cells=dict(cells))


def ghdl_to_verilog(design: Design, folder: Path, block_ram: bool = True, drop_dead: bool = True) -> Path:
    """``ghdl synth`` of the design's top level into ``folder/spiker_top.v``.

    ``block_ram``: mark the large weight memories for block RAM (:func:`block_memories`);
    ``drop_dead``: leave out the constant registers nothing reads (:func:`drop_dead_constants`).
    """
    ghdl = find_tool("ghdl")
    design.write(folder)
    with heartbeat("GHDL synthesis"):
        proc = run_tool([ghdl, "synth", "--std=08", "--out=verilog", *design.design_files, "-e", design.top],
                        folder, "GHDL synthesis")
    out = folder / "spiker_top.v"
    verilog = drop_dead_constants(proc.stdout) if drop_dead else proc.stdout
    out.write_text(block_memories(verilog, BLOCK_RAM_MIN_BITS) if block_ram else verilog)
    return out


_DEAD_CONSTANT = re.compile(r'^  (?:/\*[^\n]*\*/\n  )?always @\*\n    (\w+) = "[01]*";[^\n]*\n'
                            r'  initial\n    \1 <= "[01]*";[^\n]*\n', re.M)


def drop_dead_constants(verilog: str) -> str:
    """GHDL's Verilog without the constant registers no logic reads.

    GHDL writes the weight ROM's VHDL constant (``banks``) both as the memories it reads
    (``reg [..] nX[..] ; // memory`` with their init) and once more as one flat register per
    bank, assigned a bit string and read by nothing: P3's are 0.8 Mbit, half the file, and yosys
    spends minutes on them (``proc_init`` logs every bit) before ``opt_clean`` drops them. Only
    a register whose every other mention in its module is its declaration is dropped, so the
    netlist (and the counts) are the same.
    """
    modules = re.split(r"(?m)^(?=module )", verilog)
    for i, text in enumerate(modules):
        dead = [m for m in _DEAD_CONSTANT.finditer(text)
                if len(re.findall(rf"\b{m.group(1)}\b", text)) == 3]  # declaration, assignment, init
        for m in reversed(dead):
            text = text[:m.start()] + text[m.end():]
        for m in dead:
            text = re.sub(rf"(?m)^  reg (?:\[\d+:0\] )?{m.group(1)};\n", "", text, count=1)
        modules[i] = text
    return "".join(modules)


#: A memory (weight ROM bank) of at least this many bits is marked for block RAM.
BLOCK_RAM_MIN_BITS = 2048
_MEMORY = re.compile(r"^(\s*)(reg \[(\d+):0\] \w+\[(\d+):0\] ; // memory)$", re.M)


def block_memories(verilog: str, min_bits: int) -> str:
    """GHDL's Verilog with ``(* rom_style = "block" *)`` on every memory of at least ``min_bits``.

    GHDL 2.0 drops VHDL attributes, and yosys' cost model maps shallow ROMs (64 words) to LUTs
    plus an output register per bit; the hint makes ``memory_libmap`` use block RAM instead
    (RAMB18/RAMB36, ECP5 DP16KD). Smaller memories are left to yosys (LUTs).
    """
    def mark(m: re.Match) -> str:
        bits = (int(m.group(3)) + 1) * (int(m.group(4)) + 1)
        return f'{m.group(1)}(* rom_style = "block" *) {m.group(2)}' if bits >= min_bits else m.group(0)

    return _MEMORY.sub(mark, verilog)


def synthesize(design: Design, folder: Path, timeout: float = 1800,
               netlist: bool = True, block_ram: bool = True) -> tuple[Resources, Path | None]:
    """Synthesize into ``folder``; returns the resources and the mapped netlist path.

    ``netlist=False``: count cells only, without writing the (large) netlist (path None).
    ``block_ram=False``: every weight memory in LUTs (:func:`ghdl_to_verilog`).
    """
    yosys = find_tool("yosys")
    verilog = ghdl_to_verilog(design, folder, block_ram=block_ram)
    script = folder / "synth.ys"
    # the netlist has one wire per bit, for simulation: GHDL's wide concatenation buses form
    # vector-level false loops on which iverilog's scheduler stalls
    write = "splitnets\nopt_clean -purge\nwrite_verilog -noattr netlist.v\n" if netlist else ""
    script.write_text(f"read_verilog {verilog.name}\n"
                      f"synth_xilinx -flatten -top {design.top}\n"
                      "tee -o stat.json stat -json\n" + write)
    with heartbeat("yosys synthesis"):
        run_tool([yosys, "-q", "-l", "yosys.log", script.name], folder, "yosys synthesis", timeout=timeout)
    text = (folder / "stat.json").read_text()
    start = text.index("{")
    stat = json.loads(text[start:])
    cells = stat["design"]["num_cells_by_type"] if "design" in stat else {}
    res = classify({k: int(v) for k, v in cells.items()})
    log = (folder / "yosys.log").read_text()
    latch_lines = [ln for ln in log.splitlines() if re.search(r"Latch inferred", ln)]
    res.latches += len(latch_lines)
    if res.latches:
        raise ToolError(f"the synthesized netlist has {res.latches} latch(es); refusing its estimate:\n"
                        + "\n".join(latch_lines[:10]))
    return res, (folder / "netlist.v") if netlist else None


def estimate_resources(design: Design, keep: str | Path | None = None, timeout: float = 1800) -> Resources:
    """LUT/FF/carry/BRAM/LUTRAM/DSP/latch counts of ``design`` (GHDL synth + yosys synth_xilinx)."""
    folder = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="spiker-synth-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        res, _ = synthesize(design, folder, timeout=timeout, netlist=False)
        return res
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


#: the post-synthesis testbench's signals on spiker_top's ports
_VTB_SIGNALS = {"s_axis_tvalid": "s_tvalid", "s_axis_tready": "s_tready", "s_axis_tdata": "beat[N-1:0]",
                "s_axis_tlast": "beat[N]", "m_axis_tvalid": "m_tvalid", "m_axis_tready": "1'b1",
                "m_axis_tdata": "m_tdata", "m_axis_tlast": "m_tlast"}


def render_verilog_testbench(design: Design, max_beats: int) -> str:
    """``spiker_vtb``: streams ``beats.mem`` (tlast, then the spikes) through the netlist's ``spiker_top``
    and writes each result word to ``out.txt`` (template ``templates/spiker_vtb.v``, ``str.format``)."""
    return (TEMPLATE_DIR / "spiker_vtb.v").read_text().format(
        n_in=design.geometry.n_inputs, tdata=design.geometry.tdata_bits, max_beats=int(max_beats), top=design.top,
        ports=verilog_connections(TOP_PORTS, _VTB_SIGNALS))


def xilinx_cell_models() -> Path:
    """yosys' simulation models of the Xilinx cells (``<datdir>/xilinx/cells_sim.v``)."""
    yosys = Path(find_tool("yosys")).resolve()
    candidates = [yosys.parent.parent / "share" / "yosys"]
    config = shutil.which("yosys-config")
    if config is not None:
        out = subprocess.run([config, "--datdir"], capture_output=True, text=True).stdout.strip()
        candidates.insert(0, Path(out))
    for datdir in candidates:
        if (datdir / "xilinx" / "cells_sim.v").is_file():
            return datdir / "xilinx" / "cells_sim.v"
    raise ToolError("yosys' xilinx/cells_sim.v not found: install yosys with its data files")


@dataclass
class PostSynthReport:
    samples: int
    mismatches: int
    counts: np.ndarray
    predictions: np.ndarray
    resources: Resources
    #: simulated clock cycles (all shards) and seconds of the iverilog run
    cycles: int = 0
    sim_seconds: float = 0.0


def postsynth_simulate(design: Design, data: Any, n_samples: int | None = None, keep: str | Path | None = None,
                       timeout: float = 1800, workers: int = 1, progress: bool = True) -> PostSynthReport:
    """Synthesize, then run the mapped netlist in iverilog on ``data``; compare with the golden model.

    Samples are streamed back to back (the pipeline overlaps them), so this also checks
    that consecutive samples do not leak state into each other. ``workers`` vvp processes
    each run a contiguous shard of the samples on the one compiled netlist; ``timeout`` bounds
    each tool run. Gate-level simulation is slow for large nets (the digits net: a few cycles
    per second), so progress is logged and shown as a bar.
    """
    iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
    cells = xilinx_cell_models()
    qnet = design.quantized
    spikes, _ = collect(data, qnet.spec.n_inputs, n_samples)
    steps, n = spikes.shape[0], spikes.shape[1]
    golden = qnet.run(spikes)
    geo = design.geometry
    shards = np.array_split(np.arange(n), threads.workers(min(int(workers), n)))  # one vvp per core of the budget
    widest = max(layer.n_inputs for layer in qnet.layers)
    folder = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="spiker-postsynth-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        logger.info("post-synthesis: synthesizing %s", design.top)
        # weights in LUT ROMs: yosys 0.23's xilinx/cells_sim.v has no behavioural RAMB18E1/RAMB36E1
        res, netlist = synthesize(design, folder, timeout=timeout, block_ram=False)
        assert netlist is not None
        (folder / "tb.v").write_text(render_verilog_testbench(design, len(shards[0]) * steps))
        logger.info("post-synthesis: compiling the netlist (%s) in iverilog", res)
        run_tool([iverilog, "-g2012", "-o", "sim.vvp", "-s", "spiker_vtb", "tb.v", netlist.name, str(cells)],
                 folder, "iverilog compilation", timeout=timeout)
        runs = []
        for i, idx in enumerate(shards):
            sub = folder / f"shard-{i}"
            sub.mkdir(exist_ok=True)
            lines = [("1" if t == steps - 1 else "0") + "".join("1" if v else "0" for v in spikes[t, b][::-1])
                     for b in idx for t in range(steps)]  # tlast, then the spike bits MSB first
            (sub / "beats.mem").write_text("\n".join(lines) + "\n")
            max_cycles = len(idx) * (steps + 8) * (widest + 4) + 100
            runs.append((sub, [vvp, "-n", str(folder / "sim.vvp"), f"+beats={len(lines)}",
                               f"+samples={len(idx)}", f"+max_cycles={max_cycles}"]))
        start = time.perf_counter()
        cycles = sum(_run_vvp(runs, n, timeout, progress))
        seconds = time.perf_counter() - start
        out: list[str] = []
        for (sub, _), idx in zip(runs, shards):
            words = (sub / "out.txt").read_text().split()
            if "TIMEOUT" in words or len(words) != len(idx):
                raise ToolError(f"post-synthesis simulation of samples {idx[0]}..{idx[-1]} produced "
                                f"{len(words) - ('TIMEOUT' in words)} of {len(idx)} results")
            out += words
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    fmt = geo.format()
    counts = np.zeros((n, geo.n_classes), dtype=np.int64)
    preds = np.zeros(n, dtype=np.int64)
    for k, word in enumerate(out):
        counts[k], preds[k] = fmt.decode_result(int(word, 16))
    bad = int(((counts != golden.counts).any(axis=1) | (preds != golden.predictions)).sum())
    logger.info("post-synthesis: %d samples, %d mismatch(es), %.0f s of iverilog", n, bad, seconds)
    return PostSynthReport(samples=n, mismatches=bad, counts=counts, predictions=preds, resources=res,
                           cycles=cycles, sim_seconds=seconds)


def _run_vvp(runs: list[tuple[Path, list[str]]], n: int, timeout: float, progress: bool) -> list[int]:
    """Run the vvp processes in parallel, each in its folder (output in ``vvp.log``); a bar counts
    finished samples. Returns each run's simulated cycles."""
    procs = []
    try:
        for sub, cmd in runs:
            with open(sub / "vvp.log", "w") as log_file:
                procs.append(subprocess.Popen(cmd, cwd=sub, stdout=log_file, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        done_before = 0
        with progress_bar(total=n, desc="post-synthesis", unit="samples", enabled=progress) as bar:
            while True:
                finished = all(p.poll() is not None for p in procs)
                done = sum(_lines(sub / "out.txt") for sub, _ in runs)
                if done != done_before:
                    bar.update(done - done_before)
                    logger.info("post-synthesis: %d/%d samples simulated", done, n)
                    done_before = done
                if finished:
                    break
                if time.monotonic() > deadline:
                    raise ToolError(f"iverilog simulation did not finish within {timeout:.0f} s "
                                    f"({done}/{n} samples done)")
                time.sleep(0.5)
        cycles = []
        for proc, (sub, _) in zip(procs, runs):
            text = (sub / "vvp.log").read_text(errors="replace")
            if proc.returncode != 0 or "need +beats" in text:
                raise ToolError(f"iverilog simulation failed (exit {proc.returncode}):\n{error_lines(text)}")
            match = re.search(r"spiker_vtb: (\d+) cycles", text)
            cycles.append(int(match.group(1)) if match else 0)
        return cycles
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line and line != "TIMEOUT")
    except FileNotFoundError:
        return 0
