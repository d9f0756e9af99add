"""VHDL generation: a thin network-specific layer over the hand-written RTL library.

The generator emits only what is specific to one network: a package of constants
(weights and thresholds taken from :class:`~spiker.golden.QuantizedNet`, never
re-quantized here), the core (layers chained with valid/ready and the readout),
an AXI4-Stream top level, and a self-checking, file-driven testbench. Their text is in
``spiker/hdl/templates``, the ports and file lists in :mod:`spiker.hdl.interface`;
everything else is the library in ``spiker/hdl/rtl``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from spiker.errors import InfeasibleConfigError
from spiker.golden import FixedPointConfig, QuantizedNet, quantize
from spiker.hdl.design import Design
from spiker.hdl.interface import (
    GEN_FILES,
    TOP_PORTS,
    Port,
    associations,
    debug_ports,
    geometry,
    rtl_sources,
    template,
    vhdl_port_map,
    vhdl_ports,
)

log = logging.getLogger(__name__)

MODEL_CODE = {"lif": "MODEL_LIF", "syn": "MODEL_SYN", "if": "MODEL_IF"}
RESET_CODE = {"subtract": "RESET_SUBTRACT", "zero": "RESET_ZERO", "none": "RESET_NONE"}
#: Widest ROM word per bank (bits): keeps literal constants short for synthesis tools.
BANK_BITS = 64
#: Present input spikes a layer visits per cycle (2: dual-port weight ROM).
EVENTS_PER_CYCLE = 2
#: widest register a fully parallel layer's ``neuron_unit`` holds: its neuron (ACC) and sum
#: (weights_bw + events_per_cycle - 1) registers are VHDL integers (32-bit, ``2 ** (bits - 1)`` must fit)
INTEGER_REGISTER_BITS = 31
#: the generated files, each rendered from the template of the same name (a layer's part: ``*_layer.vhd``)
PKG_FILE, CORE_FILE, TOP_FILE, TB_FILE = GEN_FILES


def _layer_template(name: str) -> str:
    return name.replace(".vhd", "_layer.vhd")


def _int_vector(values: np.ndarray, per_line: int = 24) -> str:
    flat = [int(v) for v in np.asarray(values).ravel()]
    if len(flat) == 1:
        return f"(0 => {flat[0]})"
    lines = [", ".join(str(v) for v in flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return "(\n    " + ",\n    ".join(lines) + ")"


def _signed_bits(v: int) -> int:
    return (v if v >= 0 else -v - 1).bit_length() + 1


def register_bits(weights: np.ndarray, neurons_bw: int, threshold: int, model: str) -> int:
    """Width of a fully parallel layer's neuron registers (``neuron_unit``'s ACC), from its weights.

    A register holds ``leak(v) - r*thr`` in ``[LO - thr, HI]`` plus any subset of the neuron's
    weights, so it stays in ``[LO - thr + neg_j, HI + pos_j]`` (``pos_j``/``neg_j``: the sums of
    neuron j's positive/negative weights); a syn current stays in ``[LO + neg_j, HI + pos_j]``
    and a syn membrane adds ``c`` in ``[LO, HI]`` to ``leak(v) - r*thr``. The width covers the
    widest neuron, and at least one bit above ``neurons_bw`` (two for syn) for the saturation
    tests; it never exceeds the golden ``accumulator_bits`` bound for all weights at full scale.
    """
    w = np.asarray(weights, dtype=np.int64)
    pos, neg = int(w.clip(min=0).sum(axis=1).max()), int(w.clip(max=0).sum(axis=1).min())
    hi, lo = (1 << (neurons_bw - 1)) - 1, -(1 << (neurons_bw - 1))
    values = [lo - threshold + neg - 1, hi + pos]
    if model == "syn":
        values += [2 * lo - threshold, 2 * hi]
    return max(max(_signed_bits(v) for v in values), neurons_bw + (2 if model == "syn" else 1))


def check_integer_registers(qnet: QuantizedNet, events_per_cycle: int,
                            neurons_per_cycle: tuple[int, ...] | None = None) -> None:
    """Raise :class:`~spiker.errors.InfeasibleConfigError` when a fully parallel layer's registers
    (:func:`register_bits` from ``neurons_bw`` and the weights; the sum register's ``weights_bw +
    events_per_cycle - 1``) exceed :data:`INTEGER_REGISTER_BITS` (docs/fixed-point.md)."""
    cfg, limit = qnet.config, INTEGER_REGISTER_BITS
    for layer, p in zip(qnet.layers, _npc(qnet, neurons_per_cycle)):
        if p < layer.n_neurons:  # time-multiplexed: signed vectors, no integer limit
            continue
        if cfg.weights_bw + events_per_cycle - 1 > limit:
            raise InfeasibleConfigError(cfg, f"weights_bw={cfg.weights_bw} with events_per_cycle={events_per_cycle}"
                                        f" needs a {cfg.weights_bw + events_per_cycle - 1}-bit sum register in "
                                        f"{layer.spec.name}; the hardware holds at most {limit} bits (weights_bw "
                                        f"<= {limit + 1 - events_per_cycle})")
        bits = register_bits(layer.weights, cfg.neurons_bw, int(layer.threshold), layer.spec.neuron_model)
        if bits > limit:
            raise InfeasibleConfigError(cfg, f"neurons_bw={cfg.neurons_bw} needs {bits}-bit neuron registers in "
                                        f"{layer.spec.name}; the hardware holds at most {limit} bits")


def _prefix(i: int) -> str:
    return f"L{i}"


def _npc(qnet: QuantizedNet, neurons_per_cycle: tuple[int, ...] | None) -> tuple[int, ...]:
    return neurons_per_cycle or tuple(layer.n_neurons for layer in qnet.layers)


def render_package(qnet: QuantizedNet, events_per_cycle: int = EVENTS_PER_CYCLE,
                   neurons_per_cycle: tuple[int, ...] | None = None, row_register: bool = True) -> str:
    """``spiker_net_pkg``: the network's sizes, widths, and each layer's constants and weights."""
    g = geometry(qnet)
    cfg = qnet.config
    npc = _npc(qnet, neurons_per_cycle)
    layers = []
    for i, layer in enumerate(qnet.layers):
        spec = layer.spec
        text = template(_layer_template(PKG_FILE)).substitute(npc=npc[i],
            P=_prefix(i), name=spec.name, model=spec.neuron_model, reset=spec.reset_mechanism,
            n_in=spec.n_inputs, n_out=spec.n_neurons, acc=layer.acc_bits, thr=int(layer.threshold),
            reg=register_bits(layer.weights, cfg.neurons_bw, int(layer.threshold), spec.neuron_model),
            beta=-1 if spec.beta_shift is None or spec.neuron_model == "if" else int(spec.beta_shift),
            alpha=-1 if spec.alpha_shift is None else int(spec.alpha_shift),
            n_w=layer.weights.size,
            # ROM order: input-major (one word = one input's row for all neurons)
            weights=_int_vector(np.asarray(layer.weights, dtype=np.int64).T))
        layers.append("\n" + text.removesuffix("\n"))
    return template(PKG_FILE).substitute(
        wb=cfg.weights_bw, nb=cfg.neurons_bw, fp=cfg.fp_dec, n_inputs=g.n_inputs, n_classes=g.n_classes,
        n_cycles=qnet.spec.n_cycles, count_bits=g.count_bits, class_bits=g.class_bits, tdata_bits=g.tdata_bits,
        epc=int(events_per_cycle), row_register="true" if row_register else "false", layers="\n".join(layers))


def _debug(qnet: QuantizedNet) -> tuple[tuple[Port, ...], ...]:
    return debug_ports(geometry(qnet).layer_neurons)


def render_core(qnet: QuantizedNet, neurons_per_cycle: tuple[int, ...] | None = None) -> str:
    """``spiker_core``: the layers (fully parallel or time-multiplexed) chained, then the readout."""
    n_layers = len(qnet.layers)
    widths = geometry(qnet).sizes
    signals = [f"  signal t{i}_valid, t{i}_ready, t{i}_last : std_logic;\n"
               f"  signal t{i}_data : std_logic_vector({w} - 1 downto 0);" for i, w in enumerate(widths)]
    layers = []
    npc = _npc(qnet, neurons_per_cycle)
    for i, layer in enumerate(qnet.layers):
        spec = layer.spec
        tm = npc[i] < layer.n_neurons
        layers.append("\n" + template(_layer_template(CORE_FILE)).substitute(
            entity="snn_layer_tm" if tm else "snn_layer", acc="ACC" if tm else "REG",
            layer_generic=(f",\n                 NEURONS_PER_CYCLE => {_prefix(i)}_NEURONS_PER_CYCLE" if tm else
                           ",\n                 ROW_REGISTER => ROW_REGISTER"),
            lname=f"l{i}", P=_prefix(i), i=i, j=i + 1, model=MODEL_CODE[spec.neuron_model],
            reset=RESET_CODE[spec.reset_mechanism], bank_bits=BANK_BITS))
        layers.append(f"  l{i}_spk <= t{i + 1}_data;")
    dbg = "".join(f";\n    {p.vhdl(len(ports[0].name))}" for ports in _debug(qnet) for p in ports)
    return template(CORE_FILE).substitute(ports=vhdl_ports(TOP_PORTS), dbg_ports=dbg, signals="\n".join(signals),
                                          layers="\n".join(layers), n_layers=n_layers)


def render_top(qnet: QuantizedNet) -> str:
    """``spiker_top``: the core behind the stream ports, its debug ports left open."""
    dbg = "".join(", " + ", ".join(associations(ports, {p.name: "open" for p in ports})) for ports in _debug(qnet))
    return template(TOP_FILE).substitute(ports=vhdl_ports(TOP_PORTS), port_map=vhdl_port_map(TOP_PORTS),
                                         dbg_open=dbg)


#: the testbench's signals on the core's stream ports
_TB_SIGNALS = {"s_axis_tvalid": "s_tvalid", "s_axis_tready": "s_tready", "s_axis_tdata": "s_tdata",
               "s_axis_tlast": "s_tlast", "m_axis_tvalid": "m_tvalid", "m_axis_tready": "m_tready",
               "m_axis_tdata": "m_tdata", "m_axis_tlast": "m_tlast"}


def render_testbench(qnet: QuantizedNet) -> str:
    """``spiker_tb``: the file-driven testbench of :mod:`spiker.hdl.sim` (results and traces as text)."""
    signals, dbg_map, monitor = [], [], []
    for i, (layer, ports) in enumerate(zip(qnet.layers, _debug(qnet))):
        n = layer.n_neurons
        signals.append(f"  signal l{i}_upd : std_logic;\n"
                       f"  signal t{i + 1}_spk : std_logic_vector({n} - 1 downto 0);\n"
                       f"  signal l{i}_v, l{i}_s : std_logic_vector({n} * NEURONS_BW - 1 downto 0);")
        dbg_map.append(",\n              " + ", ".join(associations(ports, {f"l{i}_spk": f"t{i + 1}_spk"})))
        syn = ""
        if layer.spec.neuron_model == "syn":
            syn = f"\n        write(o, string'(\" S\"));\n        ints(o, l{i}_s, NEURONS_BW);"
        monitor.append(template(_layer_template(TB_FILE)).substitute(lname=f"l{i}", index=i, j=i + 1, syn=syn))
    return template(TB_FILE).substitute(
        port_map=vhdl_port_map(TOP_PORTS, _TB_SIGNALS, per_line=3), signals="\n".join(signals),
        dbg_map="".join(dbg_map), monitor="".join(monitor), n_layers=len(qnet.layers))


class VhdlGenerator:
    """Translate a trained network at fixed-point ``optim_params`` into VHDL.

    ``snn`` is a :class:`~spiker.net.SpikingNet` (quantized here with the golden
    model's :func:`~spiker.golden.quantize`) or an already built
    :class:`~spiker.golden.QuantizedNet` (then ``optim_params`` may be omitted).
    ``events_per_cycle``: present input spikes each layer visits per clock cycle, 2
    (default: the weight ROM has two read ports, a true dual-port block RAM) or 1
    (single-port ROM).
    ``neurons_per_cycle``: neuron update units per layer, P (1 <= P <= N): None (every layer
    fully parallel), an int for every layer, a list per layer or a mapping layer index/name -> P
    (:func:`spiker.hdl.multiplex.resolve_neurons_per_cycle`); P < N time-multiplexes the layer.
    ``stream_width``: 8, 16, 32 or 64 to implement the design behind the fixed-width AXI4-Stream
    top (``Design.implement`` then uses it; docs/implementation.md), None (default) for the
    parallel top.
    ``row_register``: True (default) puts a register between each fully parallel layer's weight
    ROM and its neurons (the row, or the two rows' sum with two events a cycle): the block RAM's
    slow read gets a cycle of its own (about 100 MHz on an ECP5-85F speed 6 instead of 85) for
    one more cycle of pipeline fill a layer and ``N (weights_bw + events_per_cycle - 1)``
    flip-flops; False is the lean layer (docs/hardware.md "Timing").
    """

    def __init__(self, snn: Any, optim_params: FixedPointConfig | Mapping[str, int] | None = None, *,
                 events_per_cycle: int = EVENTS_PER_CYCLE, neurons_per_cycle: Any = None,
                 stream_width: int | None = None, row_register: bool = True) -> None:
        if events_per_cycle not in (1, 2) or isinstance(events_per_cycle, bool):
            raise ValueError(f"events_per_cycle must be 1 or 2, got {events_per_cycle!r}")
        if not isinstance(row_register, bool):
            raise ValueError(f"row_register must be True or False, got {row_register!r}")
        self.events_per_cycle = int(events_per_cycle)
        self.row_register = row_register
        from spiker.hdl.stream_format import check_width

        self.stream_width = None if stream_width is None else check_width(stream_width)
        if isinstance(snn, QuantizedNet):
            if optim_params is not None and FixedPointConfig.from_dict(optim_params) != snn.config:
                raise ValueError(f"optim_params {dict(optim_params)} differ from the QuantizedNet's "
                                 f"{snn.config.to_dict()}")
            self.quantized = snn
        else:
            if optim_params is None:
                raise ValueError("optim_params (weights_bw, neurons_bw, fp_dec) are required")
            self.quantized = quantize(snn, optim_params)
        from spiker.hdl.multiplex import resolve_neurons_per_cycle

        layers = self.quantized.layers
        self.neurons_per_cycle = resolve_neurons_per_cycle([la.n_neurons for la in layers], neurons_per_cycle,
                                                           [la.spec.name for la in layers])
        check_integer_registers(self.quantized, self.events_per_cycle, self.neurons_per_cycle)

    def generate(self) -> Design:
        """The design: the RTL library, then the generated package, core, top and testbench."""
        q = self.quantized
        log.info("generating VHDL for %s at %s", "-".join(map(str, q.spec.sizes)), q.config)
        files = rtl_sources()
        files[PKG_FILE] = render_package(q, self.events_per_cycle, self.neurons_per_cycle, self.row_register)
        files[CORE_FILE] = render_core(q, self.neurons_per_cycle)
        files[TOP_FILE] = render_top(q)
        files[TB_FILE] = render_testbench(q)
        return Design(quantized=q, files=files, events_per_cycle=self.events_per_cycle,
                      neurons_per_cycle=self.neurons_per_cycle, stream_width=self.stream_width,
                      row_register=self.row_register)
