"""The accelerator on a board behind a UART: the host-side driver, the bitstream build, the GHDL check.

The board top (``uart_board_top``, hand-written in ``spiker/hdl/rtl``) receives each sample
as ``n_cycles`` steps of ``ceil(n_inputs / 8)`` bytes (the 8-bit stream format of
:mod:`spiker.hdl.stream_top`) and answers with the result word of ``spiker_top``
(``TDATA_BITS / 8`` bytes, low byte first: class counts, then the predicted class).

* :func:`encode` / :func:`decode`: samples to bytes and result bytes to counts and classes;
* :class:`Board`: a serial port (pyserial, imported only when a board is opened);
* :func:`build`: the bitstream for a named board (ULX3S: ECP5-85F, CABGA381, 25 MHz);
* :func:`simulate_uart`: the board top in GHDL, fed the driver's own bytes over its serial
  line, compared with the golden model.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spiker.errors import DataError, ToolError

if TYPE_CHECKING:
    from spiker.hdl.design import Design
    from spiker.hdl.implement import ImplementReport

log = logging.getLogger(__name__)

BOARDS_DIR = Path(__file__).parent / "hdl" / "boards"
#: board name -> (target, package, speed, clock MHz, constraints file)
BOARDS = {"ulx3s": ("ecp5-85k", "CABGA381", 6, 25.0, "ulx3s.lpf")}
BOARD_TOP = "uart_board_top"
#: the hand-written board files, in analysis order (after the design and the stream top)
BOARD_RTL = ("uart_rx.vhd", "uart_tx.vhd", "uart_board_top.vhd")
BAUD = 115200


def _spikes(spikes: Any, n_inputs: int) -> np.ndarray:
    x = np.asarray(spikes)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[-1] != n_inputs:
        raise DataError(f"spikes must be time-first [T, B, {n_inputs}] (or one sample [T, {n_inputs}]), "
                        f"got {list(x.shape)}")
    if not np.isin(x, (0, 1)).all():
        raise DataError("spikes must be 0 or 1")
    return x.astype(np.uint8)


def encode(spikes: Any, design: Design) -> bytes:
    """The bytes the host sends for ``spikes [T, B, n]``: each sample's ``T`` steps (T must be the
    net's ``n_cycles``: the board counts a sample's bytes) of ``ceil(n / 8)`` bytes."""
    spec = design.quantized.spec
    x = _spikes(spikes, spec.n_inputs)
    if x.shape[0] != spec.n_cycles:
        raise DataError(f"the board takes samples of exactly n_cycles={spec.n_cycles} steps, got {x.shape[0]}")
    fmt = design.geometry.format(8)
    return b"".join(fmt.encode_bytes(x[:, b]) for b in range(x.shape[1]))


def result_bytes(design: Design) -> int:
    """Bytes the board sends back per sample."""
    return design.geometry.format().result_bytes


def decode(data: bytes, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """Class counts ``[B, classes]`` and predicted classes ``[B]`` from the board's answer bytes."""
    fmt = design.geometry.format()
    size = fmt.result_bytes
    if len(data) % size:
        raise DataError(f"{len(data)} result bytes are not whole results of {size} bytes")
    rows = [fmt.decode_bytes(data[i:i + size]) for i in range(0, len(data), size)]
    counts = np.array([r[0] for r in rows], dtype=np.int64).reshape(len(rows), design.geometry.n_classes)
    return counts, np.array([r[1] for r in rows], dtype=np.int64)


class Board:
    """A board running ``uart_board_top`` on a serial port (``/dev/ttyUSB0`` for the ULX3S)."""

    def __init__(self, design: Design, port: str, baud: int = BAUD, timeout: float = 5.0) -> None:
        try:
            import serial  # pyserial: only needed with a real board
        except ImportError as exc:
            raise ToolError("pyserial is needed to talk to a board: pip install pyserial") from exc
        self.design = design
        self.serial = serial.Serial(port, baudrate=baud, timeout=timeout)

    def infer(self, spikes: Any) -> tuple[np.ndarray, np.ndarray]:
        """Send the samples, read their results: class counts and predicted classes."""
        data = encode(spikes, self.design)
        n = len(data) // (self.design.quantized.spec.n_cycles * -(-self.design.quantized.spec.n_inputs // 8))
        self.serial.write(data)
        answer = self.serial.read(n * result_bytes(self.design))
        if len(answer) != n * result_bytes(self.design):
            raise ToolError(f"the board answered {len(answer)} of {n * result_bytes(self.design)} bytes")
        return decode(answer, self.design)

    def close(self) -> None:
        self.serial.close()


def board_files(design: Design, clks_per_bit: int | None = None) -> dict[str, str]:
    """The VHDL to add to the design's for the board top: the 8-bit stream top and the UART files."""
    from spiker.hdl.interface import rtl_sources
    from spiker.hdl.stream_top import stream_files

    files, _ = stream_files(design, 8)
    files.update(rtl_sources(BOARD_RTL))
    return files


def build(design: Design, board: str = "ulx3s", keep: str | Path | None = None, **kwargs: Any) -> ImplementReport:
    """Place and route the board top and pack its bitstream (``<keep>/uart_board_top.bit``); returns
    the :class:`~spiker.hdl.implement.ImplementReport` (its ``bitstream``)."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; known: {', '.join(BOARDS)}")
    tgt, package, speed, clock, lpf = BOARDS[board]
    return design.implement(tgt, package=package, speed=speed, clock_mhz=clock, top=BOARD_TOP,
                            files=board_files(design), constraints=BOARDS_DIR / lpf, keep=keep, **kwargs)


@dataclass
class UartSimReport:
    samples: int
    mismatches: int
    counts: np.ndarray
    predictions: np.ndarray
    cycles: int
    bytes_sent: int
    bytes_received: int


def simulate_uart(design: Design, spikes: Any, clks_per_bit: int = 4, keep: str | Path | None = None,
                  timeout: float = 3600) -> UartSimReport:
    """Run ``uart_board_top`` in GHDL with :func:`encode`'s bytes on its serial input (``clks_per_bit``
    cycles a bit, 4 for speed; the board build uses 25 MHz / 115200), decode its answer with
    :func:`decode` and compare with the golden model."""
    from spiker.hdl.interface import RTL_DIR
    from spiker.hdl.sim import GhdlBuild

    x = _spikes(spikes, design.quantized.spec.n_inputs)
    data = encode(x, design)
    golden = design.quantized.run(x)
    sim_design = design
    for name, text in board_files(design).items():
        sim_design = sim_design.with_file(name, text)
    tb = (RTL_DIR / "uart_tb.vhd").read_text().replace("CLKS_PER_BIT : positive := 4",
                                                        f"CLKS_PER_BIT : positive := {int(clks_per_bit)}")
    sim_design = sim_design.with_file("uart_tb.vhd", tb)
    sim_design.testbench = "uart_tb"
    folder = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="spiker-uart-"))
    folder.mkdir(parents=True, exist_ok=True)
    n = x.shape[1]
    try:
        build = GhdlBuild(sim_design, folder)
        (folder / "uart_stim.txt").write_text(f"{len(data)} {n}\n" + "\n".join(map(str, data)) + "\n")
        max_cycles = (len(data) + n * result_bytes(design)) * 10 * clks_per_bit * 2 + 200 * n + 1000
        build.run(folder / "uart_stim.txt", folder / "uart_results.txt", False, max_cycles, timeout)
        lines = (folder / "uart_results.txt").read_text().split("\n")
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    words = [ln.split() for ln in lines if ln.strip()]
    if not words or words[-1][0] != "DONE":
        raise ToolError(f"the UART simulation did not finish: {' '.join(words[-1]) if words else 'no output'}")
    answer = bytes(int(w[0]) for w in words[:-1])
    counts, preds = decode(answer, design)
    bad = int(((counts != golden.counts).any(axis=1) | (preds != golden.predictions)).sum())
    log.info("UART simulation: %d samples, %d mismatch(es), %d bytes in, %d out", n, bad, len(data), len(answer))
    return UartSimReport(samples=n, mismatches=bad, counts=counts, predictions=preds, cycles=int(words[-1][1]),
                         bytes_sent=len(data), bytes_received=len(answer))


__all__ = ["BOARDS", "Board", "UartSimReport", "board_files", "build", "decode", "encode", "simulate_uart"]
