"""Encoders: real-valued features to spike trains ``[N, T, n]`` (uint8 0/1).

Inputs are either static features ``[N, n]`` (the same vector at every step) or
per-step values ``[N, T, n]``. Values must already be scaled to ``[0, 1]`` for
``rate``; ``threshold`` and ``delta`` compare against ``threshold``.

- ``rate``: Bernoulli spikes with probability equal to the value (seeded).
- ``threshold``: a spike at step t where ``x_t > threshold``.
- ``delta``: a spike at step t where ``x_t - x_{t-1} > threshold`` (``x_{-1} = 0``),
  so static features spike once, at step 0.
- ``spikes``: the data already is 0/1 spikes ``[N, T, n]``; passed through unchanged.
"""

from __future__ import annotations

import numpy as np

from spiker.data.checks import is_spikes
from spiker.errors import DataError

ENCODINGS = ("rate", "threshold", "delta", "spikes")


def _per_step(x: np.ndarray, n_cycles: int) -> np.ndarray:
    if x.ndim == 2:
        return np.broadcast_to(x[:, None, :], (x.shape[0], n_cycles, x.shape[1]))
    if x.ndim == 3:
        if x.shape[1] != n_cycles:
            raise DataError(f"per-step data has {x.shape[1]} steps but the net runs n_cycles={n_cycles}")
        return x
    raise DataError(f"data must be [N, n_inputs] or [N, T, n_inputs], got shape {list(x.shape)}")


def encode(x: np.ndarray, n_cycles: int, encoding: str = "rate", seed: int = 0,
           threshold: float = 0.5) -> np.ndarray:
    """Spike trains ``[N, n_cycles, n]`` as uint8 from features (see module doc)."""
    if encoding not in ENCODINGS:
        raise DataError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    x = np.asarray(x)
    if encoding == "spikes":
        if x.ndim != 3 or not is_spikes(x):
            raise DataError("encoding 'spikes' needs 0/1 data of shape [N, T, n_inputs]")
        return _per_step(x, n_cycles).astype(np.uint8)
    x = _per_step(x.astype(np.float32), n_cycles)
    if encoding == "rate":
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"rate encoding needs values in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
        rng = np.random.default_rng(seed)
        return (rng.random(x.shape, dtype=np.float32) < x).astype(np.uint8)
    if encoding == "threshold":
        return (x > threshold).astype(np.uint8)
    previous = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
    return ((x - previous) > threshold).astype(np.uint8)
