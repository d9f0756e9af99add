"""The readout both the trainer and the hardware report: spike counts and their argmax.

Prediction rule: the class whose output neuron fired most over all steps; ties
(including no spikes at all) go to the lowest class index. The accelerator's
output counters implement the same rule.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def predict(counts: ArrayLike) -> ArrayLike:
    """Predicted class per sample from spike counts ``[B, C]`` (ties: lowest index)."""
    # Both argmax functions document "first maximal index" for ties.
    if isinstance(counts, torch.Tensor):
        return counts.argmax(dim=-1)
    return np.asarray(counts).argmax(axis=-1)


def correct(counts: ArrayLike, labels: ArrayLike) -> int:
    """Number of samples whose prediction equals the label."""
    pred = predict(counts)
    if isinstance(pred, torch.Tensor):
        return int((pred == torch.as_tensor(labels).to(pred.device)).sum())
    return int((pred == np.asarray(labels)).sum())


def accuracy(counts: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of samples predicted correctly."""
    n = len(labels)
    return correct(counts, labels) / n if n else float("nan")
