"""GHDL co-simulation of a generated design against the golden model.

The design is analysed and elaborated once; each worker is one ``ghdl -r`` run that
streams a shard of the samples through the file-driven testbench. Results (and, with
``trace=True``, every layer's spikes and membranes at every step) are compared with
:meth:`spiker.golden.QuantizedNet.run` on the same spikes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spiker import threads
from spiker.data import collect as collect_samples
from spiker.data.checks import check_layout
from spiker.errors import DataError, ToolError
from spiker.hdl.tools import ghdl_for_simulation, run_tool
from spiker.progress import heartbeat

if TYPE_CHECKING:
    from spiker.golden import QuantizedNet
    from spiker.hdl.design import Design
    from spiker.hdl.interface import Geometry

log = logging.getLogger(__name__)

GHDL_STD = "--std=08"
#: GHDL mcode's speed on the testbench: simulated cycles x (inputs + 4 neurons) per second, measured on
#: the digits net (2-core VM); sizes the expected run time that picks the backend
MCODE_WORK_PER_S = 3e6


@dataclass
class Mismatch:
    """Where the hardware first differs from the golden model."""

    sample: int
    step: int | None
    layer: int | None
    neuron: int | None
    what: str  # "spikes", "membrane", "synapse", "counts", "missing"
    expected_spike: int | None = None
    got_spike: int | None = None
    expected_membrane: int | None = None
    got_membrane: int | None = None
    expected: Any = None
    got: Any = None

    def __str__(self) -> str:
        if self.step is None:
            return f"sample {self.sample}: {self.what} expected {self.expected}, got {self.got}"
        return (f"sample {self.sample}, step {self.step}, layer {self.layer}, neuron {self.neuron}: "
                f"{self.what} differs (spike expected {self.expected_spike} got {self.got_spike}; "
                f"membrane expected {self.expected_membrane} got {self.got_membrane}"
                + (f"; synapse expected {self.expected} got {self.got}" if self.what == "synapse" else "")
                + ")")


@dataclass
class SimReport:
    """What one simulation run found; arrays are per sample."""

    predictions: np.ndarray
    counts: np.ndarray
    golden_predictions: np.ndarray
    golden_counts: np.ndarray
    labels: np.ndarray | None
    mismatches: int
    first_mismatch: Mismatch | None
    cycles: np.ndarray
    bound: np.ndarray          # event-driven bound sum_t max_l a_l(t) (one event a cycle)
    scan_cost: np.ndarray      # scan-every-input cost model 6 + sum_t max_l (3 + e_l(t) (N_in,l + 2))
    ghdl_wall_s: float
    simulated_cycles: int
    traced: bool
    workers: int
    optim_params: dict = field(default_factory=dict)
    events_per_cycle: int = 1  # present input spikes a layer visits per cycle in the simulated design
    ghdl_backend: str = ""  # the GHDL code generator that ran (llvm, gcc or mcode)
    #: the event-driven bound at the design's events_per_cycle (``bound`` is the one-event bound)
    bound_events: np.ndarray | None = None
    #: with trace=True: the RTL's own per-layer spikes/membranes (golden LayerTrace form), for spiker.plots
    traces: list | None = None

    @property
    def n_samples(self) -> int:
        return len(self.predictions)

    @property
    def hw_accuracy(self) -> float | None:
        if self.labels is None or not len(self.labels):
            return None
        return float((self.predictions == self.labels).mean())

    @property
    def golden_accuracy(self) -> float | None:
        if self.labels is None or not len(self.labels):
            return None
        return float((self.golden_predictions == self.labels).mean())

    @property
    def cycles_min(self) -> int:
        return int(self.cycles.min()) if len(self.cycles) else 0

    @property
    def cycles_max(self) -> int:
        return int(self.cycles.max()) if len(self.cycles) else 0

    @property
    def cycles_mean(self) -> float:
        return float(self.cycles.mean()) if len(self.cycles) else 0.0

    @property
    def bound_mean(self) -> float:
        return float(self.bound.mean()) if len(self.bound) else 0.0

    @property
    def bound_events_mean(self) -> float:
        """Mean event-driven bound at ``events_per_cycle`` events a cycle (the one-event bound without it)."""
        b = self.bound if self.bound_events is None else self.bound_events
        return float(b.mean()) if len(b) else 0.0

    @property
    def scan_cost_mean(self) -> float:
        return float(self.scan_cost.mean()) if len(self.scan_cost) else 0.0

    @property
    def sim_cycles_per_s(self) -> float:
        return self.simulated_cycles / self.ghdl_wall_s if self.ghdl_wall_s > 0 else 0.0

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict:
        return {
            "samples": self.n_samples, "mismatches": self.mismatches,
            "first_mismatch": None if self.first_mismatch is None else str(self.first_mismatch),
            "hw_accuracy": self.hw_accuracy, "golden_accuracy": self.golden_accuracy,
            "cycles_min": self.cycles_min, "cycles_mean": self.cycles_mean, "cycles_max": self.cycles_max,
            "bound_mean": self.bound_mean, "bound_events_mean": self.bound_events_mean,
            "scan_cost_mean": self.scan_cost_mean,
            "ghdl_wall_s": self.ghdl_wall_s, "sim_cycles_per_s": self.sim_cycles_per_s,
            "traced": self.traced, "workers": self.workers, "optim_params": self.optim_params,
            "events_per_cycle": self.events_per_cycle, "ghdl_backend": self.ghdl_backend,
            "predictions": self.predictions.tolist(),
        }

    def __str__(self) -> str:
        acc = ("" if self.hw_accuracy is None else
               f", accuracy hw {self.hw_accuracy:.4f} / golden {self.golden_accuracy:.4f}")
        text = (f"{self.n_samples} samples, {self.mismatches} mismatches"
                f"{' (traced)' if self.traced else ''}{acc}; cycles/inference "
                f"{self.cycles_min}/{self.cycles_mean:.1f}/{self.cycles_max} (min/mean/max, "
                f"{self.events_per_cycle} event{'s' if self.events_per_cycle > 1 else ''}/cycle), "
                f"event-driven bound {self.bound_mean:.1f}, scan-all model {self.scan_cost_mean:.1f}; "
                f"GHDL {self.ghdl_wall_s:.2f} s, {self.sim_cycles_per_s:.0f} cycles/s")
        if self.first_mismatch is not None:
            text += f"\nfirst mismatch: {self.first_mismatch}"
        return text


# -- inputs ----------------------------------------------------------------------------------

def collect(data: Any, n_inputs: int, n_samples: int | None, n_cycles: int | None = None,
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Spikes ``[T, B, n]`` (uint8) and labels (or None) from a loader, a batch or an array;
    batch-first input (``n_cycles`` in the batch position) is refused by name."""
    spikes, labels = collect_samples(data, n_samples)
    check_layout(spikes, n_cycles, None, "spikes", exact_steps=False)
    if spikes.shape[-1] != n_inputs:
        raise DataError(f"spikes must be time-first [T, B, {n_inputs}], got {list(spikes.shape)}")
    return spikes, labels


def write_stimulus(path: Path, spikes: np.ndarray) -> None:
    """Stimulus text for ``spikes [T, B, n]``: see the testbench header."""
    steps, batch, _ = spikes.shape
    chars = np.where(spikes.transpose(1, 0, 2) > 0, ord("1"), ord("0")).astype(np.uint8)
    with path.open("w") as f:
        f.write(f"{batch}\n")
        for b in range(batch):
            f.write(f"{steps}\n")
            f.write("\n".join(row.tobytes().decode() for row in chars[b]))
            f.write("\n")


# -- cost models -----------------------------------------------------------------------------

def active_inputs(traces) -> np.ndarray:
    """``a[l, t, b]``: number of spikes entering layer ``l`` at step ``t`` of sample ``b``."""
    return np.stack([tr.input_spikes.sum(axis=-1) for tr in traces])


def event_bound(a: np.ndarray, events_per_cycle: int = 1) -> np.ndarray:
    """``sum_t max_l ceil(a_l(t) / E)`` per sample: the busiest layer's input events of each step,
    ``E = events_per_cycle`` of them a cycle (E = 1: the one-event bound)."""
    e = int(events_per_cycle)
    return ((np.asarray(a, dtype=np.int64) + e - 1) // e).max(axis=0).sum(axis=0)


def layer_fill(row_register: bool = True) -> int:
    """Cycles a fully parallel layer (``snn_layer``) adds to an inference's pipeline fill: the
    input register, the issue into the ROM's address register, the ROM read, the row register
    (the generator's ``row_register``) and the update before the next layer sees the step: 6,
    5 without the row register."""
    return 6 if row_register else 5


def update_cycles(model: str) -> int:
    """Update phases a fully parallel layer (``neuron_unit``) spends per step: 3 for syn, else 2."""
    return 3 if model == "syn" else 2


def layer_step_cycles(a: np.ndarray, n_groups: int = 1, events_per_cycle: int = 2,
                      update: int = 2) -> np.ndarray:
    """Cycles a layer spends on a step with ``a`` present input spikes while tokens keep coming.

    With ``K = max(ceil(a / E), 1)``: ``K + U`` for the fully parallel layer (``n_groups = 1``,
    ``snn_layer``; ``U = update`` phases, :func:`update_cycles`); ``S0 + G K + 3``, plus 1 when
    ``K = 1``, for the time-multiplexed layer (``snn_layer_tm``, ``G = ceil(N / P)`` groups of P
    neurons), its scan cycles ``S0`` taken as ``K`` here (a lower bound; exact from the spike
    positions: :func:`spiker.hdl.multiplex.tm_step_cycles`).
    """
    e = int(events_per_cycle)
    k = np.maximum((np.asarray(a, dtype=np.int64) + e - 1) // e, 1)
    if int(n_groups) == 1:
        return k + int(update)
    return (int(n_groups) + 1) * k + 3 + (k == 1)


def event_cycles(a: np.ndarray, events_per_cycle: int = 2, groups: list[int] | None = None,
                 pipelined: bool = False, models: list[str] | None = None) -> np.ndarray:
    """The layers' busy cycles ``sum_t max_l c_l(t)`` per sample, ``c_l`` from :func:`layer_step_cycles`.

    ``groups[l]`` is layer l's ``ceil(N_l / P_l)`` (``neurons_per_cycle`` P_l; default 1, fully
    parallel). One inference of fully parallel layers takes about this plus ``F L - 2 + max(C - 1, 1)``
    cycles for C classes (``F`` = :func:`layer_fill`: pipeline fill/drain; readout; docs/hardware.md).
    ``pipelined=True``: ``sum_k max_l c_l(k - l)`` instead (layer l works on step k - l while
    layer 0 works on step k), the measured cycles minus 2 for chains of time-multiplexed layers.
    ``models[l]``: layer l's neuron model (its fully parallel update phases; default lif).
    """
    a = np.asarray(a, dtype=np.int64)
    n_layers = a.shape[0]
    groups = [1] * n_layers if groups is None else list(groups)
    update = [update_cycles(m) for m in (models or ["lif"] * n_layers)]
    c = np.stack([layer_step_cycles(a[i], groups[i], events_per_cycle, update[i]) for i in range(n_layers)])
    if pipelined:
        skew = np.zeros((n_layers, c.shape[1] + n_layers - 1, *c.shape[2:]), dtype=np.int64)
        for i in range(n_layers):
            skew[i, i:i + c.shape[1]] = c[i]
        c = skew
    return c.max(axis=0).sum(axis=0)


def inference_cycles(a: np.ndarray, events_per_cycle: int = 2, groups: list[int] | None = None,
                     models: list[str] | None = None, *, n_classes: int, row_register: bool = True) -> np.ndarray:
    """Cycles of one inference per sample from the layers' activity ``a [L, T, B]``: the optimizer's
    cycle figure (the golden model's ``GoldenResult.activity``). Fully parallel layers:
    :func:`event_cycles` plus ``F L - 2 + max(C - 1, 1)`` (``F`` = :func:`layer_fill`, ``C`` =
    ``n_classes``; ``row_register``: the generator's knob; docs/hardware.md); with time-multiplexed layers
    (a ``groups`` entry > 1) the pipelined sum plus 2 (a lower bound: each scan taken as ``K`` cycles)."""
    a = np.asarray(a, dtype=np.int64)
    if groups is not None and any(int(g) > 1 for g in groups):
        return event_cycles(a, events_per_cycle, groups, pipelined=True, models=models) + 2
    fill = layer_fill(row_register) * a.shape[0]
    return event_cycles(a, events_per_cycle, models=models) + fill - 2 + max(int(n_classes) - 1, 1)


def scan_cost(a: np.ndarray, n_in: list[int]) -> np.ndarray:
    """``6 + sum_t max_l(3 + e_l(t) (N_in,l + 2))``, e_l(t) = 1 when layer l has an input event."""
    n = np.asarray(n_in).reshape(-1, 1, 1)
    return 6 + (3 + (a > 0) * (n + 2)).max(axis=0).sum(axis=0)


def cycle_bound(spikes_steps: int, qnet: QuantizedNet, neurons_per_cycle: tuple[int, ...] | None = None) -> int:
    """A safe upper bound on one sample's cycles (every input spiking every step)."""
    npc = neurons_per_cycle or [layer.n_neurons for layer in qnet.layers]
    widest = max(-(-layer.n_neurons // p) * (layer.n_inputs + 3) for layer, p in zip(qnet.layers, npc))
    return (spikes_steps + len(qnet.layers) + 2) * (widest + 3) + 20


# -- GHDL ------------------------------------------------------------------------------------

class GhdlBuild:
    """A design analysed and elaborated once in a work folder, by the fastest GHDL backend installed
    (:func:`spiker.hdl.tools.ghdl_for_simulation`; llvm and gcc link an executable here)."""

    def __init__(self, design: Design, folder: Path, expected_seconds: float | None = None) -> None:
        ghdl = ghdl_for_simulation(expected_seconds=expected_seconds)
        self.ghdl, self.backend = ghdl.path, ghdl.backend
        self.folder = folder
        design.write(folder)
        for name in design.files:
            run_tool([self.ghdl, "-a", GHDL_STD, name], folder, f"GHDL analysis of {name}")
        run_tool([self.ghdl, "-e", GHDL_STD, design.testbench], folder, "GHDL elaboration")
        self.testbench = design.testbench

    def run(self, stim: Path, results: Path, trace: bool, max_cycles: int, timeout: float,
            wave: Path | None = None) -> float:
        args = [self.ghdl, "-r", GHDL_STD, self.testbench, f"-gSTIM={stim}", f"-gRESULTS={results}",
                f"-gTRACE={'true' if trace else 'false'}", f"-gMAX_CYCLES={max_cycles}",
                "--ieee-asserts=disable"]
        if wave is not None:
            args.append(wave_option(wave))
        start = time.perf_counter()
        try:
            proc = subprocess.run(args, cwd=self.folder, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"GHDL simulation did not finish within {timeout:.0f} s "
                            "(derived from the cycle bound; pass timeout= to allow more)") from exc
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise ToolError(f"GHDL simulation failed (exit {proc.returncode}):\n"
                            + "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-20:]))
        return wall


#: waveform file suffix -> GHDL run option
WAVE_OPTIONS = {".vcd": "--vcd", ".ghw": "--wave"}


def wave_option(path: str | Path) -> str:
    """The GHDL run option that dumps a waveform to ``path``: VCD for ``.vcd``, GHW for ``.ghw``."""
    path = Path(path)
    option = WAVE_OPTIONS.get(path.suffix.lower())
    if option is None:
        raise DataError(f"waveform file {path.name}: name it .vcd (VCD, any viewer) or .ghw (GHW, GTKWave)")
    return f"{option}={path}"


@dataclass
class _Shard:
    start: int
    results: dict = field(default_factory=dict)  # sample -> (cycles, class, counts)
    trace: dict = field(default_factory=dict)    # (sample, layer, step) -> (spikes str, v list, s list)
    timeouts: list = field(default_factory=list)
    cycles: int = 0
    wall: float = 0.0


def parse_results(path: Path, start: int, geometry: Geometry) -> _Shard:
    """The testbench's result lines; a result word is decoded by the stream format of ``geometry``."""
    fmt = geometry.format()
    shard = _Shard(start=start)
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        if tag == "R":
            k = int(parts[1]) + start
            counts, cls = fmt.decode_result(int(parts[3], 16))
            shard.results[k] = (int(parts[2]), cls, counts)
        elif tag == "T":
            k, layer, step = int(parts[1]) + start, int(parts[2]), int(parts[3])
            rest = parts[5:]
            syn = None
            if "S" in rest:
                cut = rest.index("S")
                rest, syn = rest[:cut], [int(v) for v in rest[cut + 1:]]
            shard.trace[(k, layer, step)] = (parts[4], [int(v) for v in rest], syn)
        elif tag == "TIMEOUT":
            shard.timeouts.append(int(parts[1]) + start)
        elif tag == "DONE":
            shard.cycles = int(parts[1])
    return shard


def rtl_traces(shards_trace: dict, golden_traces: list, n: int, steps: int) -> list:
    """The RTL's trace lines as one ``LayerTrace`` per layer (arrays ``[T, n, N]``; -1 where missing)."""
    from spiker.golden.model import LayerTrace

    out = []
    for li, gold in enumerate(golden_traces):
        width = gold.membrane.shape[-1]
        spikes = np.full((steps, n, width), -1, dtype=np.int64)
        membrane = np.full((steps, n, width), -1, dtype=np.int64)
        synapse = None if gold.synapse is None else np.full((steps, n, width), -1, dtype=np.int64)
        for k in range(n):
            for t in range(steps):
                got = shards_trace.get((k, li, t))
                if got is None:
                    continue
                spikes[t, k] = np.frombuffer(got[0].encode(), dtype=np.uint8) - ord("0")
                membrane[t, k] = got[1]
                if synapse is not None and got[2] is not None and len(got[2]) == width:
                    synapse[t, k] = got[2]
        out.append(LayerTrace(input_spikes=gold.input_spikes[:, :n], membrane=membrane, spikes=spikes,
                              synapse=synapse))
    return out


def _compare_trace(qnet, golden, shards_trace: dict, n: int, steps: int) -> tuple[set, Mismatch | None]:
    """Samples whose trace differs anywhere, and the first difference (sample, step, layer, neuron)."""
    bad: set[int] = set()
    first: Mismatch | None = None
    for k in range(n):
        for t in range(steps):
            for li, tr in enumerate(golden.traces):
                exp_s = tr.spikes[t, k]
                exp_v = tr.membrane[t, k]
                exp_y = None if tr.synapse is None else tr.synapse[t, k]
                got = shards_trace.get((k, li, t))
                if got is None:
                    bad.add(k)
                    if first is None:
                        first = Mismatch(k, t, li, None, "missing", expected="a layer update", got="none")
                    continue
                got_s = np.frombuffer(got[0].encode(), dtype=np.uint8) - ord("0")
                got_v = np.asarray(got[1], dtype=np.int64)
                diff = (got_s != exp_s) | (got_v != exp_v)
                what = None
                if exp_y is not None:
                    got_y = np.asarray(got[2] if got[2] is not None else [], dtype=np.int64)
                    if got_y.shape != exp_y.shape:
                        got_y = np.zeros_like(exp_y) - (1 << 62)
                    ydiff = got_y != exp_y
                else:
                    got_y, ydiff = None, np.zeros_like(diff)
                if diff.any() or ydiff.any():
                    bad.add(k)
                    if first is None:
                        j = int(np.argmax(diff | ydiff))
                        what = ("spikes" if got_s[j] != exp_s[j] else
                                "membrane" if got_v[j] != exp_v[j] else "synapse")
                        first = Mismatch(
                            k, t, li, j, what, expected_spike=int(exp_s[j]), got_spike=int(got_s[j]),
                            expected_membrane=int(exp_v[j]), got_membrane=int(got_v[j]),
                            expected=None if exp_y is None else int(exp_y[j]),
                            got=None if got_y is None else int(got_y[j]))
    return bad, first


def simulate(design: Design, data: Any, n_samples: int | None = None, trace: bool = False, workers: int = 1,
             timeout: float | None = None, wave: str | Path | None = None, wave_sample: int = 0,
             keep: str | Path | None = None) -> SimReport:
    """Simulate ``design`` on ``data`` in GHDL and compare with the golden model.

    ``data``: a DataLoader yielding ``(spikes [T, B, n], labels)`` or ``(spikes, _, labels)``,
    one such batch, or a spike array ``[T, B, n]`` (no labels). ``trace=True`` compares every
    layer's spikes and membranes (and synapses) at every step. ``workers`` GHDL processes
    each run a shard of the samples. ``wave``: also dump a waveform of sample ``wave_sample``
    to that file, VCD for ``.vcd`` and GHW for ``.ghw`` (GHDL ``--vcd``/``--wave``; a relative
    path is relative to the current directory). ``keep``: use this folder instead of a temporary one.
    """
    qnet = design.quantized
    spikes, labels = collect(data, qnet.spec.n_inputs, n_samples, qnet.spec.n_cycles)
    steps, n = spikes.shape[0], spikes.shape[1]
    geo = design.geometry
    if steps > geo.max_count:
        raise DataError(f"{steps} steps exceed the output counters' range ({geo.max_count}, sized for "
                        f"n_cycles={qnet.spec.n_cycles}); regenerate with a larger n_cycles")
    golden = qnet.run(spikes, trace=True)
    a = active_inputs(golden.traces)
    bound = event_bound(a)
    scan = scan_cost(a, [layer.n_inputs for layer in qnet.layers])
    per_sample = cycle_bound(steps, qnet, design.neurons_per_cycle)
    workers = threads.workers(min(int(workers), n))  # one GHDL process per core of the budget
    shards = np.array_split(np.arange(n), workers)
    # GHDL runs of the testbench simulate roughly >= 1e3 cycles/s per 1e3 neuron-inputs; be generous.
    work = sum(layer.n_inputs + 4 * layer.n_neurons for layer in qnet.layers)
    if timeout is None:
        timeout = 60.0 + per_sample * (n / workers) * max(work, 50) * 2e-5 * (3 if trace else 1)

    if wave is not None:  # checked before the long run; relative to the caller's cwd, not GHDL's folder
        wave = Path(wave).resolve()
        wave_option(wave)
        if not 0 <= wave_sample < n:
            raise DataError(f"wave_sample {wave_sample} is not one of the {n} samples")
    tmp = Path(keep).resolve() if keep is not None else Path(tempfile.mkdtemp(prefix="spiker-ghdl-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        cycles = event_cycles(a, design.events_per_cycle).sum() + n * (len(qnet.layers) + 3)
        build = GhdlBuild(design, tmp, expected_seconds=float(cycles) * work / MCODE_WORK_PER_S / workers)

        def job(i: int) -> _Shard:
            idx = shards[i]
            stim, res = tmp / f"stim_{i}.txt", tmp / f"results_{i}.txt"
            write_stimulus(stim, spikes[:, idx])
            wall = build.run(stim, res, trace, per_sample, timeout)
            shard = parse_results(res, int(idx[0]), geo)
            shard.wall = wall
            return shard

        start = time.perf_counter()
        with heartbeat(f"GHDL simulation of {n} samples"), ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(job, range(workers)))
        wall = time.perf_counter() - start
        if wave is not None:
            stim, res = tmp / "stim_wave.txt", tmp / "results_wave.txt"
            write_stimulus(stim, spikes[:, wave_sample:wave_sample + 1])
            wave.parent.mkdir(parents=True, exist_ok=True)
            build.run(stim, res, False, per_sample, timeout, wave=wave)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)

    results, traces, timeouts, total_cycles = {}, {}, [], 0
    for part in parts:
        results.update(part.results)
        traces.update(part.trace)
        timeouts += part.timeouts
        total_cycles += part.cycles
    if timeouts:
        raise ToolError(f"the design did not answer sample {timeouts[0]} within {per_sample} cycles "
                        "(testbench watchdog): the RTL hangs")
    missing = [k for k in range(n) if k not in results]
    if missing:
        raise ToolError(f"GHDL produced no result for sample {missing[0]} ({len(missing)} missing)")
    cycles = np.array([results[k][0] for k in range(n)], dtype=np.int64)
    preds = np.array([results[k][1] for k in range(n)], dtype=np.int64)
    counts = np.array([results[k][2] for k in range(n)], dtype=np.int64)
    bad = {k for k in range(n) if not np.array_equal(counts[k], golden.counts[k])
           or preds[k] != golden.predictions[k]}
    first = None
    if trace:
        tbad, first = _compare_trace(qnet, golden, traces, n, steps)
        bad |= tbad
    if first is None and bad:
        k = min(bad)
        first = Mismatch(k, None, None, None, "counts", expected=golden.counts[k].tolist(),
                         got=counts[k].tolist())
    report = SimReport(
        predictions=preds, counts=counts, golden_predictions=np.asarray(golden.predictions),
        golden_counts=golden.counts, labels=labels, mismatches=len(bad), first_mismatch=first,
        cycles=cycles, bound=bound, scan_cost=scan, ghdl_wall_s=wall, simulated_cycles=total_cycles,
        traced=trace, workers=workers, optim_params=qnet.config.to_dict(), ghdl_backend=build.backend,
        events_per_cycle=design.events_per_cycle,
        bound_events=event_bound(a, design.events_per_cycle),
        traces=rtl_traces(traces, golden.traces, n, steps) if trace else None)
    log.info("simulation: %s", report)
    return report


__all__ = ["Mismatch", "SimReport", "collect", "event_bound", "event_cycles", "inference_cycles",
           "layer_step_cycles", "scan_cost", "simulate", "update_cycles", "layer_fill"]
