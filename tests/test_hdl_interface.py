"""The hardware interface declared once (spiker.hdl.interface): geometry, port lists, and every generated
entity and instance agreeing with them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hdl_nets import layer, random_net

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator, interface
from spiker.hdl.interface import (
    CORE,
    IP_CLOCK,
    STREAM_TOP,
    TOP,
    TOP_PORTS,
    axis_ports,
    debug_ports,
    geometry,
    rtl_sources,
    verilog_connections,
    vhdl_port_map,
    wrap,
)
from spiker.hdl.kit import render_ip_top, render_testbench
from spiker.hdl.stream_top import render_stream_top
from spiker.net.spec import parse_net_dict

HDL = Path(interface.__file__).parent


def _net() -> QuantizedNet:
    spec = parse_net_dict({"n_cycles": 20, "n_inputs": 33, "layer_0": layer("lif", 9), "layer_1": layer("syn", 4)})
    rng = np.random.default_rng(0)
    return QuantizedNet.from_arrays(spec, [rng.normal(0, 1, (9, 33)), rng.normal(0, 1, (4, 9))], [1.0, 1.0],
                                    {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})


def test_geometry_of_a_net():
    geo = geometry(_net())
    assert geo.sizes == (33, 9, 4) and geo.layer_inputs == (33, 9) and geo.layer_neurons == (9, 4)
    assert geo.address_bits == (6, 4)  # clog2(33), clog2(9)
    assert (geo.n_classes, geo.count_bits, geo.class_bits) == (4, 5, 2)  # 20 steps need 5 bits
    assert geo.tdata_bits == 24 and geo.max_count == 31  # 4 * 5 + 2 bits, padded to bytes
    fmt = geo.format(8)
    assert (fmt.width, fmt.beats_per_step, fmt.result_bits) == (8, 5, 24)


def test_port_declarations_and_maps():
    ports = axis_ports(16, 24, keep=True, clock=IP_CLOCK)
    assert [p.name for p in ports] == ["aclk", "aresetn", "s_axis_tvalid", "s_axis_tready", "s_axis_tdata",
                                       "s_axis_tlast", "m_axis_tvalid", "m_axis_tready", "m_axis_tdata",
                                       "m_axis_tkeep", "m_axis_tlast"]
    assert ports[9].vhdl() == "m_axis_tkeep  : out std_logic_vector(24 / 8 - 1 downto 0)"
    assert ports[0].vhdl() == "aclk          : in  std_logic"
    assert wrap(["a", "b", "c", "d", "e"], 2, first=1, indent=2) == "a,\n  b, c,\n  d, e"
    assert vhdl_port_map(TOP_PORTS[:4], {"s_axis_tvalid": "v"}).splitlines() == [
        "clk => clk, rst => rst,", "              s_axis_tvalid => v, s_axis_tready => s_axis_tready"]
    assert verilog_connections(TOP_PORTS[:2], {"rst": "r"}) == ".clk(clk), .rst(r)"
    dbg = debug_ports([3])[0]
    assert [p.vhdl(6) for p in dbg[2:]] == ["l0_v   : out std_logic_vector(3 * NEURONS_BW - 1 downto 0)",
                                            "l0_s   : out std_logic_vector(3 * NEURONS_BW - 1 downto 0)"]


_ENTITY = re.compile(r"^entity (\w+) is\s*(?:generic \((?:.|\n)*?\);\s*)?port \(\n((?:.|\n)*?)\n  \);", re.M)
_INSTANCE = re.compile(r": entity work\.(\w+)\s*(?:generic map \([^;]*?\)\s*)?port map \(((?:.|\n)*?)\);")


def _entities(text: str) -> dict[str, list[tuple[str, str]]]:
    """Entity name -> its ports as (name, direction), from VHDL text (``a, b : in ...`` too)."""
    out = {}
    for name, body in _ENTITY.findall(re.sub(r"--.*", "", text)):
        ports = []
        for names, direction in re.findall(r"([\w\s,]+?)\s*:\s*(in|out)\b", body):
            ports += [(n.strip(), direction) for n in names.split(",")]
        out[name] = ports
    return out


def _instances(text: str) -> list[tuple[str, list[str]]]:
    """(entity, formals associated) of each ``entity work.X port map`` in VHDL text."""
    return [(name, re.findall(r"(\w+)\s*=>", assoc)) for name, assoc in _INSTANCE.findall(text)]


@pytest.mark.parametrize("seed", [0, 4])
def test_generated_entities_and_instances_use_the_declared_ports(seed):
    """spiker_core/top, the stream top and the IP wrapper declare the interface's ports; every instance of
    one of them (in the tops, both testbenches and the hand-written UART board top) maps each port once."""
    design = VhdlGenerator(random_net(seed), neurons_per_cycle=1).generate()
    texts = dict(design.files)
    texts["stream.vhd"] = render_stream_top(16)
    texts["ip.vhd"] = render_ip_top(design, 16)
    texts["kit_tb.vhd"] = render_testbench(design, 16, ip=True)
    texts["kit_top_tb.vhd"] = render_testbench(design)
    texts.update(rtl_sources(["uart_board_top.vhd"]))
    entities = {}
    for text in texts.values():
        entities.update(_entities(text))
    dbg = [(p.name, p.direction) for ports in debug_ports(design.geometry.layer_neurons) for p in ports]
    top = [(p.name, p.direction) for p in TOP_PORTS]
    assert entities[CORE] == top + dbg
    assert entities[TOP] == top
    assert entities[STREAM_TOP] == [(p.name, p.direction) for p in axis_ports(16, 16, keep=True)]
    assert entities[interface.IP_TOP] == [(p.name, p.direction) for p in axis_ports(16, 16, keep=True, clock=IP_CLOCK)]
    seen = set()
    for text in texts.values():
        for name, formals in _instances(re.sub(r"--.*", "", text)):
            if name in (CORE, TOP, STREAM_TOP, interface.IP_TOP):
                assert sorted(formals) == sorted(p for p, _ in entities[name]), name
                seen.add(name)
    assert seen == {CORE, TOP, STREAM_TOP, interface.IP_TOP}


def test_the_stream_port_list_is_written_in_one_place():
    """No module or template of spiker/hdl but interface.py declares an s_axis/m_axis port."""
    declaration = re.compile(r"^\s*[sm]_axis_t\w+\s*:\s*(in|out)\b", re.M)
    files = [*HDL.glob("*.py"), *(HDL / "templates").iterdir()]
    found = [f.name for f in files if f.name != "interface.py" and declaration.search(f.read_text())]
    assert found == []
    assert declaration.search(VhdlGenerator(random_net(0)).generate().files["spiker_top.vhd"])  # the pattern works
