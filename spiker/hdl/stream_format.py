"""The accelerator's AXI4-Stream format, declared once: beat layout, encode/decode, a C header.

Two tops carry the same data:

* ``spiker_top`` (``width=None``): one input beat per time step, ``s_axis_tdata`` is
  ``N_INPUTS`` bits (bit i = spike of input i), ``s_axis_tlast`` on the sample's last step;
  one output beat per sample carrying the whole result word.
* ``spiker_stream_top`` (``width=W``, 8/16/32/64): a step is ``ceil(N_INPUTS / W)`` beats,
  input ``j*W + b`` in bit ``b`` of the step's beat ``j`` (padding bits zero),
  ``s_axis_tlast`` on the last beat of the sample's last step; the result word leaves as
  ``ceil(RESULT_BITS / W)`` beats, low bits first, ``m_axis_tkeep`` marking its bytes and
  ``m_axis_tlast`` on the last beat.

The result word (``RESULT_BITS``, a whole number of bytes): class ``c``'s spike count in bits
``c*COUNT_BITS .. (c+1)*COUNT_BITS-1``, the predicted class in the ``CLASS_BITS`` above the
counts, zero padding above that. As bytes it is little-endian (byte 0 = bits 7..0).

Users: :mod:`spiker.hdl.sim` (result parsing), :mod:`spiker.board` (UART bytes),
:mod:`spiker.hdl.stream_top` and :mod:`spiker.hdl.kit` (testbench vectors and ``spiker_stream.h``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from spiker.hdl.interface import Geometry

#: widths of the fixed-width stream top (``spiker_stream_top``)
STREAM_WIDTHS = (8, 16, 32, 64)


def check_width(width: Any) -> int:
    """``width`` as an int, or ValueError naming the allowed widths."""
    if isinstance(width, bool) or width not in STREAM_WIDTHS:
        raise ValueError(f"stream_width must be one of {', '.join(map(str, STREAM_WIDTHS))}, got {width!r}")
    return int(width)


def result_bits(n_classes: int, count_bits: int, class_bits: int) -> int:
    """Width of the result word: counts then class, padded to whole bytes."""
    return (int(n_classes) * int(count_bits) + int(class_bits) + 7) // 8 * 8


@dataclass(frozen=True)
class StreamFormat:
    """The beat layout of one network's streams; ``width`` None: ``spiker_top``, else the stream top."""

    n_inputs: int
    n_classes: int
    count_bits: int
    class_bits: int
    width: int | None = None

    @classmethod
    def of(cls, geometry: Geometry, width: int | None = None) -> StreamFormat:
        """The format of a design's ``geometry`` (:class:`spiker.hdl.interface.Geometry`)."""
        return cls(int(geometry.n_inputs), int(geometry.n_classes), int(geometry.count_bits),
                   int(geometry.class_bits), None if width is None else check_width(width))

    # -- layout -------------------------------------------------------------------------------
    @property
    def result_bits(self) -> int:
        """``RESULT_BITS`` (``TDATA_BITS`` of ``spiker_top``)."""
        return result_bits(self.n_classes, self.count_bits, self.class_bits)

    @property
    def result_bytes(self) -> int:
        return self.result_bits // 8

    @property
    def s_tdata_bits(self) -> int:
        """``s_axis_tdata`` width: N_INPUTS for ``spiker_top``, W for the stream top."""
        return self.n_inputs if self.width is None else self.width

    @property
    def s_tdata_byte_bits(self) -> int:
        """``s_axis_tdata`` padded to whole bytes (the IP wrapper's port; the bits above are ignored)."""
        return (self.s_tdata_bits + 7) // 8 * 8

    @property
    def m_tdata_bits(self) -> int:
        """``m_axis_tdata`` width: RESULT_BITS for ``spiker_top``, W for the stream top."""
        return self.result_bits if self.width is None else self.width

    @property
    def beats_per_step(self) -> int:
        """Input beats that carry one time step."""
        return 1 if self.width is None else -(-self.n_inputs // self.width)

    @property
    def out_beats(self) -> int:
        """Output beats that carry one result word."""
        return 1 if self.width is None else -(-self.result_bits // self.width)

    @property
    def last_keep(self) -> int:
        """``m_axis_tkeep`` of the last output beat (all bytes of the other beats are kept)."""
        if self.width is None:
            return (1 << (self.result_bits // 8)) - 1
        return (1 << ((self.result_bits - (self.out_beats - 1) * self.width) // 8)) - 1

    def count_lsb(self, c: int) -> int:
        """Lowest bit of class ``c``'s count in the result word."""
        return int(c) * self.count_bits

    @property
    def class_lsb(self) -> int:
        """Lowest bit of the predicted class in the result word."""
        return self.n_classes * self.count_bits

    # -- encode / decode --------------------------------------------------------------------
    def _steps(self, spikes: Any) -> np.ndarray:
        x = np.asarray(spikes)
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"a sample must be [T, {self.n_inputs}] spikes, got {list(np.shape(spikes))}")
        return x != 0

    def encode_bytes(self, spikes: Any) -> bytes:
        """The stream top's input bytes for one sample ``[T, n]``: per step ``beats_per_step`` beats of
        ``width / 8`` little-endian bytes, input ``8k + b`` in bit ``b`` of the step's byte ``k``."""
        if self.width is None:
            raise ValueError("spiker_top's input beats are N_INPUTS bits, not bytes: use encode_beats")
        x = self._steps(spikes)
        per_step = self.beats_per_step * self.width // 8
        padded = np.zeros((len(x), per_step * 8), dtype=bool)
        padded[:, :self.n_inputs] = x
        return np.packbits(padded, axis=1, bitorder="little").tobytes()

    def encode_beats(self, spikes: Any) -> list[tuple[int, int]]:
        """One sample ``[T, n]`` as input beats ``(tdata, tlast)``, tdata an int of ``s_tdata_bits``."""
        x = self._steps(spikes)
        w = self.s_tdata_bits
        beats = []
        for t, row in enumerate(x):
            word = int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little")
            for j in range(self.beats_per_step):
                last = int(t == len(x) - 1 and j == self.beats_per_step - 1)
                beats.append(((word >> (j * w)) & ((1 << w) - 1), last))
        return beats

    def encode_result(self, counts: Any, cls: int) -> int:
        """The result word of ``counts`` (one per class) and the predicted class ``cls``."""
        counts = [int(c) for c in np.asarray(counts).ravel()]
        if len(counts) != self.n_classes:
            raise ValueError(f"{len(counts)} counts for {self.n_classes} classes")
        word = 0
        for c, v in enumerate(counts):
            if not 0 <= v < (1 << self.count_bits):
                raise ValueError(f"count {v} of class {c} does not fit {self.count_bits} bits")
            word |= v << self.count_lsb(c)
        if not 0 <= int(cls) < self.n_classes:
            raise ValueError(f"class {cls} is not one of {self.n_classes}")
        return word | int(cls) << self.class_lsb

    def decode_result(self, word: int) -> tuple[list[int], int]:
        """Class counts and predicted class from a result word."""
        mask = (1 << self.count_bits) - 1
        counts = [(int(word) >> self.count_lsb(c)) & mask for c in range(self.n_classes)]
        return counts, (int(word) >> self.class_lsb) & ((1 << self.class_bits) - 1)

    def decode_bytes(self, data: bytes) -> tuple[list[int], int]:
        """Class counts and predicted class from one result's bytes (low byte first)."""
        return self.decode_result(int.from_bytes(bytes(data)[:self.result_bytes], "little"))

    # -- C header -----------------------------------------------------------------------------
    def c_header(self) -> str:
        """``spiker_stream.h``: the widths, beat layout and result-word positions as C macros."""
        w = self.width or 0
        in_bytes = self.beats_per_step * w // 8 if w else 0
        lines = [
            "/* spiker_stream.h: the accelerator's AXI4-Stream format (generated by spiker; do not edit). */",
            "#ifndef SPIKER_STREAM_H", "#define SPIKER_STREAM_H", "",
            "/* network */",
            f"#define SPIKER_N_INPUTS        {self.n_inputs}u",
            f"#define SPIKER_N_CLASSES       {self.n_classes}u",
            f"#define SPIKER_COUNT_BITS      {self.count_bits}u",
            f"#define SPIKER_CLASS_BITS      {self.class_bits}u", "",
            "/* result word: count of class c at bit c*COUNT_BITS, class above the counts, */",
            "/* zero padded to whole bytes, sent low byte first */",
            f"#define SPIKER_RESULT_BITS     {self.result_bits}u",
            f"#define SPIKER_RESULT_BYTES    {self.result_bytes}u",
            f"#define SPIKER_CLASS_LSB       {self.class_lsb}u",
            "#define SPIKER_COUNT_LSB(c)    ((c) * SPIKER_COUNT_BITS)", "",
            "/* stream width in bits (0: spiker_top, one N_INPUTS-bit beat per step) */",
            f"#define SPIKER_STREAM_WIDTH    {w}u",
            f"#define SPIKER_S_TDATA_BITS    {self.s_tdata_bits}u",
            f"#define SPIKER_M_TDATA_BITS    {self.m_tdata_bits}u",
            "/* input: a step is BEATS_PER_STEP beats; input j*W+b in bit b of beat j; tlast on */",
            "/* the last beat of the sample's last step */",
            f"#define SPIKER_BEATS_PER_STEP  {self.beats_per_step}u",
            f"#define SPIKER_STEP_BYTES      {in_bytes}u  /* bytes of one step (stream top) */",
            "/* output: RESULT_BITS as OUT_BEATS beats, low bits first; tkeep of the last beat */",
            f"#define SPIKER_OUT_BEATS       {self.out_beats}u",
            f"#define SPIKER_LAST_TKEEP      0x{self.last_keep:x}u", "",
            "#include <stdint.h>", "",
            "/* count of class c from a result's bytes (little-endian) */",
            "static inline uint32_t spiker_count(const uint8_t *r, unsigned c) {",
            "  uint32_t v = 0; unsigned lsb = SPIKER_COUNT_LSB(c);",
            "  for (unsigned i = 0; i < SPIKER_COUNT_BITS; i++)",
            "    v |= (uint32_t)((r[(lsb + i) / 8] >> ((lsb + i) % 8)) & 1u) << i;",
            "  return v;",
            "}", "",
            "/* predicted class from a result's bytes */",
            "static inline uint32_t spiker_class(const uint8_t *r) {",
            "  uint32_t v = 0;",
            "  for (unsigned i = 0; i < SPIKER_CLASS_BITS; i++)",
            "    v |= (uint32_t)((r[(SPIKER_CLASS_LSB + i) / 8] >> ((SPIKER_CLASS_LSB + i) % 8)) & 1u) << i;",
            "  return v;",
            "}", "",
            "#endif /* SPIKER_STREAM_H */", ""]
        return "\n".join(lines)


__all__ = ["STREAM_WIDTHS", "StreamFormat", "check_width", "result_bits"]
