"""Hardware cost model: LUT, FF, BRAM and DSP of a generated design without running synthesis.

The design is split into the blocks the RTL library is made of, and each block's cost is a
few fitted coefficients times a structural feature of the net (docs/hardware.md, "Cost
model"):

* per-neuron datapath: accumulator adders (``P * ACC * E``) and the update logic (``P * NB``),
  with ``P`` neuron update units per layer (``neurons_per_cycle``; ``P = N`` fully parallel);
* neuron state: accumulators (``N * ACC``) and membrane/synapse/spike registers (``N * NB``);
* weight memory: in block RAM when the memory is large enough (blocks counted from the
  RAMB18 shapes), otherwise in LUTs (``bits / 64`` per read port);
* input event scan: priority encoders over the layer's ``N_in`` inputs (``N_in * E``);
* readout: spike counters (``classes * count_bits``);
* a constant per layer (control, handshakes) and per design.

Coefficients are fitted against the project's yosys flow (``design.estimate_resources()``) by
``scripts/fit_cost_model.py`` and stored in ``cost_coefficients.json`` beside this module, with
the measured points in ``cost_data.json``. One estimate costs a few microseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiker.errors import SpikerError
from spiker.golden.fixed_point import FixedPointConfig, accumulator_bits

if TYPE_CHECKING:
    from spiker.hdl.resources import Resources

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
COEFFICIENTS_PATH = HERE / "cost_coefficients.json"
DATA_PATH = HERE / "cost_data.json"
RESOURCES = ("lut", "ff")
#: RAMB18 aspect ratios (depth, width); a true dual-port (two read ports) RAMB18 is at most 18 wide
RAMB18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
EVENTS = (1, 2)


@dataclass(frozen=True)
class LayerShape:
    """What the cost of one layer depends on. ``reg_bits``: the width of a fully parallel layer's
    neuron registers when the generator sizes them from the weights (None: the golden
    ``accumulator_bits`` bound)."""

    n_inputs: int
    n_neurons: int
    neuron_model: str = "lif"
    reg_bits: int | None = None


@dataclass(frozen=True)
class CostEstimate:
    """Estimated resources of one design (Xilinx 7-series cells, as ``estimate_resources``)."""

    lut: int
    ff: int
    bram: float   # RAMB36 = 1, RAMB18 = 0.5
    dsp: int
    blocks: tuple[tuple[str, int, int], ...] = ()  # (block, LUT, FF)

    @property
    def lut_ff(self) -> int:
        return self.lut + self.ff

    def to_dict(self) -> dict[str, Any]:
        return {"lut": self.lut, "ff": self.ff, "bram": self.bram, "dsp": self.dsp}


def design_digest(design: Any) -> str:
    """A short digest of what yosys synthesizes for ``design``: its generated files and the RTL
    library files they reach (``entity work.X`` / ``use work.P``), not the testbench."""
    import re

    files = {name: text for name, text in design.files.items() if name != "spiker_tb.vhd"}
    defines: dict[str, str] = {}
    for name, text in files.items():
        for unit in re.findall(r"^\s*(?:entity|package)\s+(\w+)\s+is", text, re.IGNORECASE | re.MULTILINE):
            defines.setdefault(unit.lower(), name)
    generated = [name for name in getattr(design, "generated_files", list(files)) if name in files]
    todo, used = list(generated or files), set()
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        for unit in re.findall(r"work\.(\w+)", files[name], re.IGNORECASE):
            target = defines.get(unit.lower())
            if target is not None and target not in used:
                todo.append(target)
    digest = hashlib.sha256()
    for name in sorted(used):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:16]


def rtl_version() -> str:
    """A short digest of the designs the generator makes now (a tiny reference net in each
    hardware mode): changes when the RTL those designs use or the generator's output changes."""
    import numpy as np

    from spiker.golden import QuantizedNet
    from spiker.hdl import VhdlGenerator
    from spiker.net.spec import parse_net_dict

    layer = {"neuron_model": "lif", "n_neurons": 4, "beta": 0.875, "threshold": 1.0, "reset_mechanism": "subtract"}
    spec = parse_net_dict({"n_cycles": 4, "n_inputs": 3, "layer_0": layer, "layer_1": {**layer, "n_neurons": 2}})
    weights = [np.linspace(-1, 1, 12).reshape(4, 3), np.linspace(1, -1, 8).reshape(2, 4)]
    qnet = QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 2})
    digest = hashlib.sha256()
    for knobs in ({"events_per_cycle": 1}, {"events_per_cycle": 2}, {"events_per_cycle": 2, "neurons_per_cycle": 2}):
        try:
            design = VhdlGenerator(qnet, **knobs).generate()
        except TypeError:  # a generator without that knob
            continue
        digest.update(design_digest(design).encode())
    return digest.hexdigest()[:16]


def bram_blocks(depth: int, width: int, ports: int) -> float:
    """Block RAM of a ``depth x width`` memory with ``ports`` read ports, in RAMB36 units (RAMB18 = 0.5)."""
    shapes = [s for s in RAMB18_SHAPES if ports == 1 or s[1] <= 18]
    halves = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in shapes)
    return 0.5 * halves


def neurons_per_cycle_of(n_neurons: int, p: int | None) -> int:
    """The layer's neuron update units: ``min(p, N)`` (as the generator: a layer of at most ``p``
    neurons is fully parallel) or N when ``None``."""
    if p is None:
        return n_neurons
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise SpikerError(f"neurons_per_cycle must be an integer >= 1, got {p!r}")
    return min(p, n_neurons)


def rom_banks(depth: int, n_words: int, wb: int, bank_bits: int = 64) -> list[tuple[int, int]]:
    """``(depth, width)`` of each bank of a weight memory whose rows hold ``n_words`` weights of
    ``wb`` bits, split into banks of at most ``bank_bits`` (the RTL's ``BANK_BITS``)."""
    per_bank = max(1, bank_bits // wb)
    full, rest = divmod(n_words, per_bank)
    return [(depth, per_bank * wb)] * full + ([(depth, rest * wb)] if rest else [])


def _clog2(n: int) -> int:
    return max(1, (int(n) - 1).bit_length())


def layer_features(layer: LayerShape, config: FixedPointConfig, events: int, p: int | None,
                   bram_min_bits: float, row_register: bool = True,
                   ) -> tuple[dict[str, float], dict[str, float], float]:
    """Per-resource feature vectors of one layer (LUT, FF) and its block RAM (``row_register``:
    the generator's knob, the fully parallel layer's register after its weight ROM)."""
    n_in, n = layer.n_inputs, layer.n_neurons
    units = neurons_per_cycle_of(n, p)
    wb, nb = config.weights_bw, config.neurons_bw
    bound = accumulator_bits(n_in, wb, nb)
    tm = units < n
    acc = bound if tm or layer.reg_bits is None else layer.reg_bits
    states = 2 if layer.neuron_model == "syn" else 1
    ports = events
    if tm:  # snn_layer_tm: one word per (input, group of P neurons)
        banks = rom_banks(n_in * math.ceil(n / units), units, wb)
    else:  # snn_layer: one word per input plus the all-zero row (depth rounded up to a power of two)
        banks = rom_banks(1 << _clog2(n_in + 1), n, wb)
    bram = rom_lut = rom_ff_lut = rom_ff_bram = 0.0
    for depth, width in banks:
        if depth * width >= bram_min_bits:
            bram += bram_blocks(depth, width, ports)
            rom_ff_bram += ports * width
        else:
            rom_lut += ports * math.ceil(depth / 64) * width
            rom_ff_lut += ports * width
    if tm:  # state in RAM, P update units
        ram_bits = n * (nb * states + 1)
        lut = {"tm_reg": units * acc, "tm_event2": units * acc * (events - 1), "rom_lut": rom_lut,
               "tm_in": n_in, "tm_state": ram_bits / 64.0, "tm_layer": 1.0}
        ff = {"acc": units * acc, "tm_unit": units * (nb * states + 1), "scan": n_in,
              "rom_ff_lut": rom_ff_lut, "rom_ff_bram": rom_ff_bram, "tm_layer": 1.0}
    else:
        # the event scan covers a window of the mask: the whole mask up to 128 inputs, in groups of
        # 16 with registered group state (snn_layer's GRP), else 64 inputs a cycle with a window
        # multiplexer over the mask (window_width); the ROM's rows go through a sum register
        # (WB + E - 1 bits a neuron: the two rows added with E = 2; row_register) into one adder
        # a neuron, or without it straight into the neurons (two adders a neuron with E = 2)
        window = n_in if n_in <= 128 else 64
        groups = math.ceil(n_in / min(16, 1 << _clog2(n_in))) if window == n_in else 0
        sum_bits = (wb + events - 1) if row_register else 0
        lut = {"neuron": units, "neuron_reg": units * acc, "sum_event2": units * (wb + 1) * (events - 1),
               "neuron_nb": units * nb * states, "rom_lut": rom_lut, "scan": window * events,
               "scan_groups": groups * events, "scan_windows": n_in if window < n_in else 0.0, "layer": 1.0}
        ff = {"acc": units * acc, "state": n * (nb * states + 1), "sum_reg": units * sum_bits,
              "scan": n_in, "scan_groups": groups, "addr": events * _clog2(n_in + 1),
              "rom_ff_lut": rom_ff_lut, "rom_ff_bram": rom_ff_bram, "layer": 1.0}
    return lut, ff, bram


def design_features(layers: Sequence[LayerShape], n_cycles: int, config: FixedPointConfig, events: int,
                    neurons_per_cycle: int | Sequence[int | None] | None, bram_min_bits: float,
                    row_register: bool = True) -> tuple[dict[str, float], dict[str, float], float]:
    """Summed feature vectors (LUT, FF) and block RAM of a whole design."""
    if events not in EVENTS:
        raise SpikerError(f"events_per_cycle must be 1 or 2, got {events!r}")
    ps = _per_layer(neurons_per_cycle, len(layers))
    count_bits = max(1, int(n_cycles).bit_length())
    readout = float(layers[-1].n_neurons * count_bits)
    lut: dict[str, float] = {"readout": readout, "const": 1.0}
    ff: dict[str, float] = {"readout": readout, "const": 1.0}
    bram = 0.0
    for layer, p in zip(layers, ps):
        l_lut, l_ff, l_bram = layer_features(layer, config, events, p, bram_min_bits, row_register)
        for out, part in ((lut, l_lut), (ff, l_ff)):
            for key, value in part.items():
                out[key] = out.get(key, 0.0) + value
        bram += l_bram
    return lut, ff, bram


def _per_layer(p: int | Sequence[int | None] | None, n_layers: int) -> list[int | None]:
    if p is None or isinstance(p, int):
        return [p] * n_layers
    ps = list(p)
    if len(ps) != n_layers:
        raise SpikerError(f"neurons_per_cycle needs one value per layer ({n_layers}), got {ps!r}")
    return ps


def shapes_of(spec: Any) -> list[LayerShape]:
    """Layer shapes of a :class:`~spiker.net.spec.NetSpec` (register widths at the golden bound)."""
    return [LayerShape(layer.n_inputs, layer.n_neurons, layer.neuron_model) for layer in spec.layers]


def shapes_of_quantized(qnet: Any) -> list[LayerShape]:
    """Layer shapes of a :class:`~spiker.golden.QuantizedNet` with the register widths the
    generator gives its fully parallel layers (``spiker.hdl.generator.register_bits``, when the
    generator sizes registers from the weights)."""
    from spiker.hdl import generator

    sizing = getattr(generator, "register_bits", None)
    shapes = []
    for layer in qnet.layers:
        reg = None
        if sizing is not None:
            reg = int(sizing(layer.weights, qnet.config.neurons_bw, int(layer.threshold), layer.spec.neuron_model))
        shapes.append(LayerShape(layer.n_inputs, layer.n_neurons, layer.spec.neuron_model, reg))
    return shapes


class CostModel:
    """Fitted block coefficients; :meth:`estimate` gives a design's resources in microseconds."""

    def __init__(self, coefficients: Mapping[str, Mapping[str, float]], bram_min_bits: float = math.inf,
                 version: str = "", meta: Mapping[str, Any] | None = None) -> None:
        for resource in RESOURCES:
            if resource not in coefficients:
                raise SpikerError(f"cost model coefficients lack {resource!r}")
        self.coefficients = {r: dict(coefficients[r]) for r in RESOURCES}
        self.bram_min_bits = float(bram_min_bits)
        self.version = version
        self.meta = dict(meta or {})

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version,
                "bram_min_bits": None if math.isinf(self.bram_min_bits) else self.bram_min_bits,
                "coefficients": self.coefficients, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostModel:
        bram_min = data.get("bram_min_bits")
        return cls(data["coefficients"], math.inf if bram_min is None else bram_min, data.get("version", ""),
                   data.get("meta"))

    def save(self, path: str | Path = COEFFICIENTS_PATH) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> CostModel:
        """The stored coefficients (default: the ones fitted for this checkout's RTL)."""
        if path is None:
            return default_model()
        return cls.from_dict(json.loads(Path(path).read_text()))

    # -- estimates --------------------------------------------------------------------------
    def estimate(self, layers: Sequence[LayerShape], n_cycles: int, config: FixedPointConfig | Mapping[str, int],
                 events_per_cycle: int = 2, neurons_per_cycle: int | Sequence[int | None] | None = None,
                 row_register: bool = True) -> CostEstimate:
        """Resources of the design of ``layers`` at ``config`` with the given hardware knobs."""
        config = FixedPointConfig.from_dict(config)
        lut_f, ff_f, bram = design_features(layers, n_cycles, config, events_per_cycle, neurons_per_cycle,
                                            self.bram_min_bits, row_register)
        lut_c, ff_c = self.coefficients["lut"], self.coefficients["ff"]
        blocks: dict[str, list[float]] = {}
        for key, value in lut_f.items():
            blocks.setdefault(key, [0.0, 0.0])[0] += lut_c.get(key, 0.0) * value
        for key, value in ff_f.items():
            blocks.setdefault(key, [0.0, 0.0])[1] += ff_c.get(key, 0.0) * value
        lut = sum(b[0] for b in blocks.values())
        ff = sum(b[1] for b in blocks.values())
        return CostEstimate(lut=int(round(lut)), ff=int(round(ff)), bram=bram, dsp=0,
                            blocks=tuple((k, int(round(b[0])), int(round(b[1]))) for k, b in blocks.items()))

    def estimate_spec(self, spec: Any, config: FixedPointConfig | Mapping[str, int], events_per_cycle: int = 2,
                      neurons_per_cycle: int | Sequence[int | None] | None = None) -> CostEstimate:
        """:meth:`estimate` for a :class:`~spiker.net.spec.NetSpec`."""
        return self.estimate(shapes_of(spec), spec.n_cycles, config, events_per_cycle, neurons_per_cycle)


@lru_cache(maxsize=1)
def default_model() -> CostModel:
    """The coefficients stored with the code; warns when they were fitted on a different RTL."""
    model = CostModel.from_dict(json.loads(COEFFICIENTS_PATH.read_text()))
    current = rtl_version()
    if model.version and model.version != current:
        warnings.warn(f"cost model coefficients were fitted on RTL {model.version}, this checkout's is "
                      f"{current}: run scripts/fit_cost_model.py to refit", stacklevel=2)
    return model


#: how a design's resources are estimated (the flow spec's ``hdl.resources``): ``synth`` GHDL +
#: yosys (the cells of a mapped netlist, seconds to minutes), ``fast`` this model (no synthesis)
METHODS = ("synth", "fast")


def estimate_design(design: Any) -> Resources:
    """The cost model's calibrated LUT/FF/BRAM/DSP estimate of a generated ``design`` (microseconds,
    no synthesis), as :class:`~spiker.hdl.resources.Resources` labelled ``method="fast"`` with a
    note saying it is not synthesized (carry, LUTRAM and latches are not estimated: None)."""
    from spiker.hdl.resources import Resources

    model = default_model()
    qnet = design.quantized
    units = list(design.neurons_per_cycle) if design.neurons_per_cycle is not None else None
    est = model.estimate(shapes_of_quantized(qnet), qnet.spec.n_cycles, qnet.config,
                         events_per_cycle=design.events_per_cycle, neurons_per_cycle=units,
                         row_register=design.row_register)
    note = f"cost-model estimate, not synthesized (spiker.optimize.cost_model, RTL {model.version or 'unknown'})"
    return Resources(lut=est.lut, ff=est.ff, carry=None, bram=est.bram, lutram=None, dsp=est.dsp, latches=None,
                     method="fast", note=note)


def design_resources(design: Any, method: str = "synth", **synth_kwargs: Any) -> Resources:
    """``design``'s resources by ``method`` (:data:`METHODS`): ``synth`` runs
    ``design.estimate_resources(**synth_kwargs)``, ``fast`` is :func:`estimate_design`."""
    if method not in METHODS:
        raise SpikerError(f"resource estimate method must be one of {', '.join(METHODS)}, got {method!r}")
    return estimate_design(design) if method == "fast" else design.estimate_resources(**synth_kwargs)


def relative_error(estimate: float, measured: float) -> float:
    """``|estimate - measured| / measured`` (0 when both are 0)."""
    if measured == 0:
        return 0.0 if estimate == 0 else math.inf
    return abs(estimate - measured) / measured


def median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


__all__ = ["METHODS", "CostEstimate", "CostModel", "LayerShape", "bram_blocks", "default_model", "design_features",
           "design_resources", "estimate_design", "layer_features", "relative_error", "rtl_version", "shapes_of",
           "shapes_of_quantized"]
