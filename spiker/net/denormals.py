"""Flush-to-zero for denormal floats while the float network runs.

Membranes that decay toward zero become denormal floats, which make CPU arithmetic tens of
times slower. :func:`flush_denormals` turns on flush-to-zero (``torch.set_flush_denormal``,
which also covers numpy in the same thread) for a block and restores the previous mode after
it, so callers' own floating-point state is left as it was.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: a denormal double built from its bit pattern (exponent 0), independent of the current mode
_DENORMAL: float = struct.unpack("<d", struct.pack("<Q", 1 << 42))[0]


def flushing_denormals() -> bool:
    """Whether this thread currently flushes denormal floats to zero (the product then becomes 0)."""
    return _DENORMAL * 1.0 == 0.0


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormals to zero in this thread for the block; the previous mode is restored after it."""
    previous = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)
