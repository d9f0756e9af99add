"""The per-layer area/latency knob ``neurons_per_cycle``: P neuron update units per layer.

P = N (the default) is the fully parallel layer ``snn_layer``; 1 <= P < N selects the
time-multiplexed ``snn_layer_tm``, which updates the layer's N neurons in ``ceil(N / P)``
groups of P with the state in RAM (cost and cycle formula in docs/hardware.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spiker.errors import SpecError

log = logging.getLogger(__name__)


def n_groups(n_neurons: int, neurons_per_cycle: int) -> int:
    """``ceil(N / P)``: the groups a layer's neurons are updated in."""
    return -(-int(n_neurons) // int(neurons_per_cycle))


def _check(value: Any, key: str, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(key, f"must be an integer 1..{n}, got {value!r}")
    if not 1 <= value <= n:
        raise SpecError(key, f"{value} is outside 1..{n} (the layer's neurons)")
    return int(value)


def resolve_neurons_per_cycle(sizes: Sequence[int], value: Any = None,
                              names: Sequence[str] | None = None) -> tuple[int, ...]:
    """P per layer from ``neurons_per_cycle``.

    ``value``: None (every layer fully parallel), an int (every layer; a layer with fewer
    neurons is fully parallel), a sequence with one entry per layer (None = fully parallel),
    or a mapping from layer index or name (``layer_0``) to P, missing layers fully parallel.
    Errors (:class:`~spiker.errors.SpecError`) name the offending key, e.g. ``neurons_per_cycle.layer_1``.
    """
    sizes = [int(n) for n in sizes]
    names = list(names) if names is not None else [f"layer_{i}" for i in range(len(sizes))]
    if value is None:
        return tuple(sizes)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError("neurons_per_cycle", f"must be >= 1, got {value}")
        capped = tuple(min(value, n) for n in sizes)
        if any(value > n for n in sizes):
            log.info("neurons_per_cycle=%d: layers with fewer neurons are fully parallel (%s)", value, capped)
        return capped
    if isinstance(value, Mapping):
        out = list(sizes)
        for key, p in value.items():
            if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(sizes):
                i = key
            elif isinstance(key, str) and key in names:
                i = names.index(key)
            else:
                raise SpecError(f"neurons_per_cycle.{key}", f"unknown layer; allowed: {', '.join(names)}")
            if p is not None:
                out[i] = _check(p, f"neurons_per_cycle.{names[i]}", sizes[i])
        return tuple(out)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(sizes):
            raise SpecError("neurons_per_cycle", f"has {len(value)} entries for {len(sizes)} layers")
        return tuple(sizes[i] if p is None else _check(p, f"neurons_per_cycle.{names[i]}", sizes[i])
                     for i, p in enumerate(value))
    raise SpecError("neurons_per_cycle", f"must be an int, a list per layer or a mapping layer -> int, "
                                         f"got {type(value).__name__}")


def scan_window(n_inputs: int) -> int:
    """Inputs the time-multiplexed layer's scan looks at per cycle (``WINW`` in snn_layer_tm.vhd)."""
    n_inputs = int(n_inputs)
    return min(n_inputs, 16 * (1 + n_inputs // 512))


def scan_cycles(spikes: np.ndarray, events_per_cycle: int = 2) -> np.ndarray:
    """Scan cycles S0 of snn_layer_tm per step: ``sum_w max(ceil(a_w / E), 1)`` over input windows.

    ``spikes``: 0/1 array ``[..., n_inputs]`` (one step per leading index).
    """
    x = np.asarray(spikes, dtype=np.int64)
    n = x.shape[-1]
    w = scan_window(n)
    pad = (-n) % w
    if pad:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], pad), dtype=np.int64)], axis=-1)
    a_w = x.reshape(*x.shape[:-1], -1, w).sum(axis=-1)
    e = int(events_per_cycle)
    return np.maximum((a_w + e - 1) // e, 1).sum(axis=-1)


def tm_step_cycles(spikes: np.ndarray, n_neurons: int, neurons_per_cycle: int,
                   events_per_cycle: int = 2) -> np.ndarray:
    """Cycles snn_layer_tm spends per step while tokens keep coming and its output is taken.

    ``S0 + G K + 3`` (+1 when K = 1), with ``K = max(ceil(a / E), 1)`` event-list words,
    ``G = ceil(N / P)`` groups and ``S0`` from :func:`scan_cycles`.
    """
    e = int(events_per_cycle)
    a = np.asarray(spikes, dtype=np.int64).sum(axis=-1)
    k = np.maximum((a + e - 1) // e, 1)
    return scan_cycles(spikes, e) + n_groups(n_neurons, neurons_per_cycle) * k + 3 + (k == 1)
