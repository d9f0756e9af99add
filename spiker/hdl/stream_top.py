"""The fixed-width AXI4-Stream top: the accelerator behind ``stream_width``-bit input and output streams.

``spiker_stream_top`` wraps the generated ``spiker_top`` between ``stream_in`` (a time step of
N inputs arrives as ``ceil(N / stream_width)`` beats, input ``j*W + b`` in bit ``b`` of beat
``j``; ``s_axis_tlast`` on the last beat of the sample's last step) and ``stream_out`` (the
result word, counts then class as in ``spiker_top``, leaves as ``ceil(TDATA_BITS / W)``
beats with ``m_axis_tkeep`` marking its bytes and ``m_axis_tlast`` on the last beat). Its
I/O count is ``2 * W + W / 8 + 8`` whatever the network, so DMA engines can feed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spiker.hdl.interface import (
    STREAM_RTL,
    STREAM_TOP,
    TOP_PORTS,
    axis_ports,
    rtl_sources,
    template,
    vhdl_port_map,
    vhdl_ports,
)
from spiker.hdl.stream_format import STREAM_WIDTHS, StreamFormat, check_width

if TYPE_CHECKING:
    from spiker.hdl.design import Design
    from spiker.hdl.interface import Geometry

#: spiker_top's stream ports inside the stream top: the adapters' step and result streams
_TOP_SIGNALS = {"s_axis_tvalid": "step_valid", "s_axis_tready": "step_ready", "s_axis_tdata": "step_data",
                "s_axis_tlast": "step_last", "m_axis_tvalid": "res_valid", "m_axis_tready": "res_ready",
                "m_axis_tdata": "res_data", "m_axis_tlast": "res_last"}


def render_stream_top(width: int) -> str:
    """The VHDL of ``spiker_stream_top`` at ``width`` bits (the net's sizes come from spiker_net_pkg)."""
    w = check_width(width)
    return template(f"{STREAM_TOP}.vhd").substitute(w=w, ports=vhdl_ports(axis_ports(w, w, keep=True)),
                                                    top_map=vhdl_port_map(TOP_PORTS, _TOP_SIGNALS))


def stream_files(design: Design, width: int) -> tuple[dict[str, str], str]:
    """The files to add to ``design``'s for the stream top (adapters, then the top) and its entity name."""
    files = rtl_sources(STREAM_RTL)
    files[f"{STREAM_TOP}.vhd"] = render_stream_top(width)
    return files, STREAM_TOP


def with_stream(design: Design, width: int) -> Design:
    """A copy of ``design`` whose files also hold the stream top (``design.top`` stays spiker_top)."""
    files, _ = stream_files(design, width)
    for name, text in files.items():
        design = design.with_file(name, text)
    return design


# The beat layout lives in spiker.hdl.stream_format; these keep the stream top's older names.

def beats_per_step(n_inputs: int, width: int) -> int:
    """Beats of a ``width``-bit stream that carry one step of ``n_inputs`` spikes."""
    return StreamFormat(int(n_inputs), 1, 1, 1, check_width(width)).beats_per_step


def encode_sample(spikes: Any, width: int) -> bytes:
    """The input stream's bytes for one sample ``[T, n]`` (:meth:`StreamFormat.encode_bytes`)."""
    n = len(spikes[0]) if len(spikes) else 0
    return StreamFormat(n, 1, 1, 1, check_width(width)).encode_bytes(spikes)


def decode_result(data: bytes, geometry: Geometry) -> tuple[list[int], int]:
    """Class counts and predicted class from one result's bytes (:meth:`StreamFormat.decode_bytes`)."""
    return StreamFormat.of(geometry).decode_bytes(data)


__all__ = ["STREAM_RTL", "STREAM_TOP", "STREAM_WIDTHS", "beats_per_step", "check_width", "decode_result",
           "encode_sample", "render_stream_top", "stream_files", "with_stream"]
