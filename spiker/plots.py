"""Plots of spike trains and membranes from a trace, and the figure helpers every plot uses.

``plot_raster`` and ``plot_membrane`` take what the golden model's
``QuantizedNet.run(spikes, trace=True)`` returns (a ``GoldenResult``), its ``traces`` list,
one ``LayerTrace``, a simulator report run with ``trace=True`` (``SimReport.traces``, the
RTL's own values), ``run_float``'s traces, or ``SpikingNet.layer_records`` output.

Every helper takes an optional ``ax`` and returns the matplotlib ``Figure``. None of them
imports pyplot or selects a backend: without ``ax`` a standalone ``Figure`` is made (which a
notebook displays when it is the cell's value), so the caller's backend is never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def new_figure(figsize: tuple[float, float] = (7, 3.5)) -> Any:
    """A standalone ``matplotlib.figure.Figure`` (no pyplot, no backend change)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot(1, 1, 1)
    return ax.figure, ax


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def layer_arrays(trace: Any, layer: int = -1) -> dict[str, np.ndarray]:
    """``spikes`` and ``membrane`` ``[T, B, N]`` of one layer from any supported trace (see module doc)."""
    if hasattr(trace, "traces"):  # GoldenResult, SimReport
        if trace.traces is None:
            raise ValueError(f"this {type(trace).__name__} has no traces: run it with trace=True")
        trace = trace.traces
    if isinstance(trace, Sequence) and not isinstance(trace, (str, bytes)):
        if not trace:
            raise ValueError("the trace has no layers")
        trace = trace[layer]
    if isinstance(trace, dict):
        spikes, membrane = trace.get("spikes"), trace.get("membrane")
    else:
        spikes, membrane = getattr(trace, "spikes", None), getattr(trace, "membrane", None)
    if spikes is None or membrane is None:
        raise TypeError(f"not a trace: {type(trace).__name__} has no spikes and membrane")
    spikes, membrane = _numpy(spikes), _numpy(membrane)
    if spikes.ndim != 3:
        raise ValueError(f"trace arrays must be [T, B, N], got {list(spikes.shape)}")
    return {"spikes": spikes, "membrane": membrane}


def plot_raster(trace: Any, layer: int = -1, sample: int = 0, ax: Any = None, title: str | None = None) -> Any:
    """Spike raster (step vs. neuron) of one layer for one sample; returns the figure."""
    arrays = layer_arrays(trace, layer)
    spikes = arrays["spikes"][:, sample, :]
    fig, ax = _axes(ax, (7, 3.5))
    steps, neurons = np.nonzero(spikes)
    ax.scatter(steps, neurons, marker="|", s=60, linewidths=1.2, color="black")
    ax.set_xlim(-0.5, spikes.shape[0] - 0.5)
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set(xlabel="time step", ylabel="neuron",
           title=title or f"layer {layer if layer >= 0 else 'output'} spikes, sample {sample} "
                          f"({int(spikes.sum())} spikes)")
    return fig


def plot_membrane(trace: Any, layer: int = -1, sample: int = 0, neurons: Sequence[int] | None = None,
                  threshold: float | None = None, ax: Any = None, title: str | None = None) -> Any:
    """Membrane over time of some neurons (default: up to 8) of one layer for one sample.

    ``threshold`` draws the firing threshold (a golden/RTL trace is in LSBs: pass the
    quantized threshold, e.g. ``qnet.layers[i].threshold``). Returns the figure.
    """
    arrays = layer_arrays(trace, layer)
    membrane = arrays["membrane"][:, sample, :]
    spikes = arrays["spikes"][:, sample, :]
    chosen = list(neurons) if neurons is not None else list(range(min(8, membrane.shape[1])))
    fig, ax = _axes(ax, (7, 3.5))
    steps = np.arange(membrane.shape[0])
    for j in chosen:
        line, = ax.plot(steps, membrane[:, j], label=f"neuron {j}")
        fired = spikes[:, j] > 0
        ax.plot(steps[fired], membrane[fired, j], "o", color=line.get_color(), markersize=4)
    if threshold is not None:
        ax.axhline(float(threshold), color="grey", linestyle="--", label="threshold")
    ax.set(xlabel="time step", ylabel="membrane",
           title=title or f"layer {layer if layer >= 0 else 'output'} membrane, sample {sample} (o: spike)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    return fig


__all__ = ["layer_arrays", "new_figure", "plot_membrane", "plot_raster", "save_figure"]
