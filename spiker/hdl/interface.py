"""The accelerator's hardware interface, declared once: files, entity names, geometry and the AXI4-Stream ports.

Everything that generates, simulates, synthesizes or tests the accelerator reads these
declarations instead of spelling them out:

* where the hand-written RTL and the templates live and the analysis order of the files
  (:data:`RTL_FILES`, :data:`GEN_FILES`, :data:`STREAM_RTL`, :func:`rtl_sources`, :func:`template`);
* the entity names (:data:`TOP`, :data:`CORE`, :data:`TESTBENCH`, :data:`STREAM_TOP`, ...);
* the geometry of one network (:class:`Geometry`: layer sizes, weight-ROM address widths, the
  readout's widths), from which :meth:`Geometry.format` gives the beat and result-word layout
  (:class:`~spiker.hdl.stream_format.StreamFormat`, the one place ``m_axis_tdata`` is packed and
  unpacked);
* the AXI4-Stream port list (:func:`axis_ports`) and the debug ports of ``spiker_core``
  (:func:`debug_ports`), rendered as VHDL declarations, VHDL port maps or Verilog connections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Literal

from spiker.golden import QuantizedNet
from spiker.hdl.stream_format import StreamFormat, result_bits

# -- files ----------------------------------------------------------------------------------

RTL_DIR = Path(__file__).parent / "rtl"
#: the network-specific files' templates (string.Template, ``$name`` placeholders)
TEMPLATE_DIR = Path(__file__).parent / "templates"
#: Library files in analysis order.
RTL_FILES = ("spiker_pkg.vhd", "event_scan.vhd", "weight_rom.vhd", "neuron_update.vhd", "neuron_unit.vhd",
             "snn_layer.vhd", "snn_layer_tm_mem.vhd", "snn_layer_tm.vhd", "spike_readout.vhd")
#: Generated files in analysis order.
GEN_FILES = ("spiker_net_pkg.vhd", "spiker_core.vhd", "spiker_top.vhd", "spiker_tb.vhd")
#: the fixed-width stream top's hand-written adapters, in analysis order
STREAM_RTL = ("stream_in.vhd", "stream_out.vhd")

# -- entity names ---------------------------------------------------------------------------

#: the AXI4-Stream accelerator (one beat per time step)
TOP = "spiker_top"
#: the layers and the readout, with per-layer debug ports
CORE = "spiker_core"
#: the file-driven GHDL testbench of :mod:`spiker.hdl.sim`
TESTBENCH = "spiker_tb"
#: the fixed-width stream top (:mod:`spiker.hdl.stream_top`)
STREAM_TOP = "spiker_stream_top"
#: the IP-integrator wrapper: aclk, aresetn, byte-multiple tdata (:mod:`spiker.hdl.kit`)
IP_TOP = "spiker_axis_ip"
#: the verification kit's self-checking testbench (:mod:`spiker.hdl.kit`)
AXIS_TB = "spiker_axis_tb"


def rtl_sources(names: Sequence[str] = RTL_FILES) -> dict[str, str]:
    """Hand-written RTL files as ``name -> text``, in the order given (default: the library)."""
    return {name: (RTL_DIR / name).read_text() for name in names}


@cache
def template(name: str) -> Template:
    """The template file ``name`` of :data:`TEMPLATE_DIR` (its final newline kept)."""
    return Template((TEMPLATE_DIR / name).read_text())


# -- geometry -------------------------------------------------------------------------------

def clog2(n: int) -> int:
    """``ceil(log2(n))``, at least 1 (the RTL's ``clog2``)."""
    r = 1
    while (1 << r) < n:
        r += 1
    return r


@dataclass(frozen=True)
class Geometry:
    """Sizes and widths of one generated accelerator, derived from the network."""

    n_inputs: int
    n_classes: int
    count_bits: int
    class_bits: int
    #: ``(n_inputs, n_neurons of layer 0, ..., n_classes)``
    sizes: tuple[int, ...] = ()

    @property
    def layer_inputs(self) -> tuple[int, ...]:
        """Inputs of each layer (its weight ROM's depth)."""
        return self.sizes[:-1]

    @property
    def layer_neurons(self) -> tuple[int, ...]:
        """Neurons of each layer (the width of its output spikes)."""
        return self.sizes[1:]

    @property
    def address_bits(self) -> tuple[int, ...]:
        """Width of each layer's weight-ROM address (the RTL's ``clog2(N_IN)``)."""
        return tuple(clog2(n) for n in self.layer_inputs)

    @property
    def payload_bits(self) -> int:
        return self.n_classes * self.count_bits + self.class_bits

    @property
    def tdata_bits(self) -> int:
        """``m_axis_tdata`` width of ``spiker_top``: counts then class, padded to whole bytes."""
        return result_bits(self.n_classes, self.count_bits, self.class_bits)

    @property
    def max_count(self) -> int:
        return (1 << self.count_bits) - 1

    def format(self, width: int | None = None) -> StreamFormat:
        """The beat layout of ``spiker_top`` (``width`` None) or the ``width``-bit stream top."""
        return StreamFormat.of(self, width)


def geometry(qnet: QuantizedNet) -> Geometry:
    """The geometry of the accelerator generated for ``qnet``."""
    spec = qnet.spec
    return Geometry(n_inputs=spec.n_inputs, n_classes=spec.n_outputs,
                    count_bits=max(1, int(spec.n_cycles).bit_length()),
                    class_bits=clog2(spec.n_outputs),
                    sizes=(int(spec.n_inputs), *(int(layer.n_neurons) for layer in qnet.layers)))


# -- ports ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Port:
    """One port: ``width`` None is a ``std_logic``, else a VHDL expression of the vector's width."""

    name: str
    direction: Literal["in", "out"]
    width: str | None = None

    def vhdl(self, pad: int = 13) -> str:
        """The VHDL declaration, the name padded to ``pad`` characters."""
        kind = "std_logic" if self.width is None else f"std_logic_vector({self.width} - 1 downto 0)"
        return f"{self.name:<{pad}} : {self.direction:<4}{kind}"


#: clock and synchronous active-high reset of every generated entity
CLOCK = (Port("clk", "in"), Port("rst", "in"))
#: the IP-integrator wrapper's clock and active-low reset
IP_CLOCK = (Port("aclk", "in"), Port("aresetn", "in"))


def axis_ports(s_width: str | int, m_width: str | int, keep: bool = False,
               clock: tuple[Port, ...] = CLOCK) -> tuple[Port, ...]:
    """The accelerator's ports: ``clock``, the s_axis slave, the m_axis master (``m_axis_tkeep``
    with ``keep``); widths as VHDL expressions (``"N_INPUTS"``, ``"TDATA_BITS"``, ``16``)."""
    ports = [*clock, Port("s_axis_tvalid", "in"), Port("s_axis_tready", "out"),
             Port("s_axis_tdata", "in", str(s_width)), Port("s_axis_tlast", "in"),
             Port("m_axis_tvalid", "out"), Port("m_axis_tready", "in"), Port("m_axis_tdata", "out", str(m_width))]
    if keep:
        ports.append(Port("m_axis_tkeep", "out", f"{m_width} / 8"))
    ports.append(Port("m_axis_tlast", "out"))
    return tuple(ports)


#: ``spiker_top``'s and ``spiker_core``'s stream ports (widths from ``spiker_net_pkg``)
TOP_PORTS = axis_ports("N_INPUTS", "TDATA_BITS")


def debug_ports(layer_neurons: Sequence[int]) -> tuple[tuple[Port, ...], ...]:
    """Per layer, ``spiker_core``'s ports that observe it: ``l<i>_upd`` (an update), ``l<i>_spk``
    (its output spikes), ``l<i>_v`` / ``l<i>_s`` (membranes / synapse currents, NEURONS_BW each)."""
    return tuple((Port(f"l{i}_upd", "out"), Port(f"l{i}_spk", "out", f"{n}"),
                  Port(f"l{i}_v", "out", f"{n} * NEURONS_BW"), Port(f"l{i}_s", "out", f"{n} * NEURONS_BW"))
                 for i, n in enumerate(layer_neurons))


def vhdl_ports(ports: Sequence[Port]) -> str:
    """An entity's port declarations, one a line (no final semicolon)."""
    return ";\n".join(f"    {p.vhdl()}" for p in ports)


def associations(ports: Sequence[Port], actual: Mapping[str, str] | None = None) -> list[str]:
    """``formal => actual`` for each port; ``actual`` maps a port to its signal (default the port's name)."""
    actual = actual or {}
    return [f"{p.name} => {actual.get(p.name, p.name)}" for p in ports]


def wrap(items: Sequence[str], per_line: int, first: int | None = None, indent: int = 14) -> str:
    """``items`` comma separated, ``first`` (default ``per_line``) on the first line, then ``per_line``
    a line, continuation lines indented by ``indent`` spaces (the column after ``port map (``)."""
    first = per_line if first is None else first
    lines = [items[:first]] + [items[i:i + per_line] for i in range(first, len(items), per_line)]
    return (",\n" + " " * indent).join(", ".join(line) for line in lines if line)


def vhdl_port_map(ports: Sequence[Port], actual: Mapping[str, str] | None = None, per_line: int = 2,
                  first: int | None = None) -> str:
    """The associations of a ``port map (...)``, ``per_line`` a line after ``first`` (default 2: clock, reset)."""
    return wrap(associations(ports, actual), per_line, 2 if first is None else first)


def verilog_connections(ports: Sequence[Port], actual: Mapping[str, str] | None = None, per_line: int = 3,
                        first: int = 4, indent: int = 18) -> str:
    """A Verilog instance's named connections ``.port(signal)``, ``first`` on the first line, then ``per_line``."""
    actual = actual or {}
    return wrap([f".{p.name}({actual.get(p.name, p.name)})" for p in ports], per_line, first, indent)


__all__ = ["AXIS_TB", "CLOCK", "CORE", "GEN_FILES", "Geometry", "IP_CLOCK", "IP_TOP", "Port", "RTL_DIR",
           "RTL_FILES", "STREAM_RTL", "STREAM_TOP", "TEMPLATE_DIR", "TESTBENCH", "TOP", "TOP_PORTS", "associations",
           "axis_ports", "clog2", "debug_ports", "geometry", "rtl_sources", "template", "verilog_connections",
           "vhdl_port_map", "vhdl_ports", "wrap"]
