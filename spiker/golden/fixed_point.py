"""The fixed-point format shared by the golden model and the RTL (docs/fixed-point.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from spiker.errors import InfeasibleConfigError, SpecError

#: Documented limits on bit-widths (keeps every exact sum far below 2**53).
MIN_BITS = 2
MAX_BITS = 32
KEYS = ("weights_bw", "neurons_bw", "fp_dec")


@dataclass(frozen=True)
class FixedPointConfig:
    """``weights_bw``/``neurons_bw``: signed two's-complement widths; ``fp_dec``: fractional bits."""

    weights_bw: int
    neurons_bw: int
    fp_dec: int

    @classmethod
    def from_dict(cls, params: Mapping[str, Any], where: str = "optim_params") -> FixedPointConfig:
        """Parse an ``optim_params`` dict; wrong keys or types raise :class:`SpecError`."""
        if isinstance(params, FixedPointConfig):
            return params
        if not isinstance(params, Mapping):
            raise SpecError(where, f"must be a dict with {', '.join(KEYS)}, got {type(params).__name__}")
        for key in params:
            if key not in KEYS:
                raise SpecError(f"{where}.{key}", f"unknown key; allowed: {', '.join(KEYS)}")
        values = {}
        for key in KEYS:
            if key not in params:
                raise SpecError(f"{where}.{key}", "is required")
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SpecError(f"{where}.{key}", f"must be an integer, got {value!r}")
            values[key] = int(value)
        return cls(**values)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return f"(weights_bw={self.weights_bw}, neurons_bw={self.neurons_bw}, fp_dec={self.fp_dec})"

    # -- feasibility independent of the network -----------------------------------
    def structural_problem(self) -> str | None:
        """Why this config can never be built, or ``None``."""
        for key in ("weights_bw", "neurons_bw"):
            value = getattr(self, key)
            if not MIN_BITS <= value <= MAX_BITS:
                return f"{key}={value} is outside the supported {MIN_BITS}..{MAX_BITS} bits"
        if self.fp_dec < 0:
            return f"fp_dec={self.fp_dec} is negative"
        if self.fp_dec >= self.neurons_bw:
            return (f"fp_dec={self.fp_dec} >= neurons_bw={self.neurons_bw}: "
                    "no integer bit left for the membrane")
        if self.weights_bw > self.neurons_bw:
            return (f"weights_bw={self.weights_bw} > neurons_bw={self.neurons_bw}: "
                    "a single weight would not fit in the membrane")
        return None

    # -- value ranges and rounding ---------------------------------------------------
    @property
    def scale(self) -> int:
        return 1 << self.fp_dec

    @property
    def membrane_min(self) -> int:
        return -(1 << (self.neurons_bw - 1))

    @property
    def membrane_max(self) -> int:
        return (1 << (self.neurons_bw - 1)) - 1

    @property
    def weight_min(self) -> int:
        return -(1 << (self.weights_bw - 1))

    @property
    def weight_max(self) -> int:
        return (1 << (self.weights_bw - 1)) - 1

    def to_fixed(self, values: np.ndarray) -> np.ndarray:
        """Round ``values * 2**fp_dec`` half away from zero (no saturation), as int64."""
        scaled = np.asarray(values, dtype=np.float64) * self.scale
        return (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)

    def quantize_weights(self, weights: np.ndarray) -> tuple[np.ndarray, int]:
        """Weights as ``weights_bw``-bit integers (round, then saturate) and how many saturated."""
        fixed = self.to_fixed(weights)
        clipped = np.clip(fixed, self.weight_min, self.weight_max)
        return clipped, int((clipped != fixed).sum())

    def quantize_threshold(self, threshold: float, where: str = "threshold") -> int:
        """The threshold as an integer; it must fit ``1 .. 2**(neurons_bw-1) - 1`` exactly."""
        fixed = int(self.to_fixed(np.float64(threshold)))
        if fixed < 1:
            raise InfeasibleConfigError(self, f"{where}={threshold:g} rounds to {fixed} with fp_dec="
                                        f"{self.fp_dec}: a threshold must be at least one LSB")
        if fixed > self.membrane_max:
            raise InfeasibleConfigError(self, f"{where}={threshold:g} needs {fixed} but the membrane "
                                        f"holds at most {self.membrane_max} (neurons_bw={self.neurons_bw})")
        return fixed


def accumulator_bits(n_inputs: int, weights_bw: int, neurons_bw: int) -> int:
    """Signed width that holds ``leak(v) + sum(active weights) - threshold`` exactly.

    Bound: ``2**(N-1) + n_inputs * 2**(W-1) + 2**(N-1)`` in magnitude.
    """
    bound = (1 << neurons_bw) + n_inputs * (1 << (weights_bw - 1))
    return math.ceil(math.log2(bound + 1)) + 1
