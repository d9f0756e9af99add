"""The one check of input spikes every stage uses: time-first layout and 0/1 values.

The trainer, the optimizer, the golden model and the simulator all call these, so the same
input is accepted or refused the same way (with the same message) everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spiker.errors import DataError

ENCODE_HINT = "encode real values first (spiker.data.encode)"


def _shape(x: Any) -> list[int]:
    return list(x.shape)


def is_spikes(x: Any) -> bool:
    """Whether every value of ``x`` (tensor or array) is 0 or 1."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.numel() == 0:
            return True
        if x.is_floating_point():
            # x equals its nearest integer clamped to [0, 1] exactly where x is 0 or 1 (NaN and inf
            # never; a denormal where x == 0 says so, i.e. under flush-to-zero): float kernels only,
            # 4x faster than the two compares (the trainer checks every batch)
            x = x.detach()
            return float((x - x.round().clamp_(0, 1)).abs_().amax()) == 0.0
        return bool(((x == 0) | (x == 1)).all())
    arr = np.asarray(x)
    return arr.dtype == np.bool_ or bool(np.isin(arr, (0, 1)).all())


def check_spikes(x: Any, what: str = "data") -> None:
    """Raise :class:`DataError` unless every value of ``x`` is 0 or 1."""
    if is_spikes(x):
        return
    values = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    odd = values[~np.isin(values, (0, 1))].reshape(-1)
    example = f" (e.g. {odd[0]:g})" if odd.size else ""
    raise DataError(f"{what} must be 0/1 spikes, got other values{example}; {ENCODE_HINT}")


def looks_batch_first(shape: Any, n_cycles: int | None) -> bool:
    """Whether a 3-d ``shape`` has ``n_cycles`` in its batch position but not in its time position."""
    shape = list(shape)
    return n_cycles is not None and len(shape) == 3 and shape[0] != n_cycles and shape[1] == n_cycles


def check_layout(x: Any, n_cycles: int | None = None, n_inputs: int | None = None, what: str = "data",
                 exact_steps: bool = True) -> None:
    """Raise :class:`DataError` unless ``x`` is time-first ``[T, B, n_inputs]`` with ``T == n_cycles``.

    A ``[B, T, n]`` (batch-first) array is named as such; it cannot be told apart when ``B == T``.
    ``exact_steps=False`` (the simulator, which may run fewer steps) refuses only batch-first input.
    """
    shape = _shape(x)
    expected = f"[T={n_cycles if n_cycles is not None else 'T'}, B, {n_inputs if n_inputs is not None else 'n_inputs'}]"
    if len(shape) != 3:
        raise DataError(f"{what} must be time-first spikes {expected}, got shape {shape}")
    if n_inputs is not None and shape[2] != n_inputs:
        raise DataError(f"{what} must be time-first spikes {expected}, got shape {shape}: "
                        f"{shape[2]} inputs, the net has {n_inputs}")
    if n_cycles is not None and shape[0] != n_cycles:
        if looks_batch_first(shape, n_cycles):
            raise DataError(f"{what} has shape {shape}, which looks batch-first [B, T, n]; spiker needs "
                            f"time-first {expected}: transpose it (x.transpose(0, 1))")
        if not exact_steps:
            return
        raise DataError(f"{what} has {shape[0]} time steps (shape {shape}, time-first [T, B, n]) but the net "
                        f"runs n_cycles={n_cycles}")


def check_input(x: Any, n_cycles: int | None = None, n_inputs: int | None = None, what: str = "data") -> None:
    """:func:`check_layout` then :func:`check_spikes`."""
    check_layout(x, n_cycles, n_inputs, what)
    check_spikes(x, what)


__all__ = ["check_input", "check_layout", "check_spikes", "is_spikes", "looks_batch_first"]
