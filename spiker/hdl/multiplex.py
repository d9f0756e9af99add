"""The per-layer area/latency knob ``neurons_per_cycle``: P neuron update units per layer.

P = N (the default) is the fully parallel layer ``snn_layer``; 1 <= P < N selects the
time-multiplexed ``snn_layer_tm``, which updates the layer's N neurons in ``ceil(N / P)``
groups of P with the state in RAM (cost and cycle formula in docs/hardware.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

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
