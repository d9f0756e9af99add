"""Datasets and encoders: one entry point, :func:`load`, returning torch DataLoaders.

Batches are ``(spikes, labels)`` with ``spikes`` time-first ``[T, B, n_inputs]``
float 0/1, ready for :class:`~spiker.net.SpikingNet`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from spiker.data import datasets
from spiker.data.checks import check_input, check_layout, check_spikes, is_spikes
from spiker.data.encoders import ENCODINGS, encode
from spiker.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["ENCODINGS", "SpikeDataset", "check_input", "check_layout", "check_spikes", "collect", "encode",
           "is_spikes", "load", "split_batch", "time_first"]


class SpikeDataset(Dataset):
    """Pre-encoded spike trains ``[N, T, n]`` (uint8) with integer labels."""

    def __init__(self, spikes: np.ndarray, labels: np.ndarray) -> None:
        self.spikes = torch.from_numpy(np.ascontiguousarray(spikes, dtype=np.uint8))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.spikes[index], self.labels[index]

    def __getitems__(self, indices):  # batched fetch: one gather instead of N lookups
        index = torch.as_tensor(indices)
        return [(self.spikes[index], self.labels[index])]


def time_first(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate to ``([T, B, n] float spikes, [B] labels)``."""
    if len(batch) == 1 and batch[0][0].dim() == 3:
        spikes, labels = batch[0]
    else:
        spikes = torch.stack([item[0] for item in batch])
        labels = torch.stack([item[1] for item in batch])
    return spikes.transpose(0, 1).float(), labels


def split_batch(batch, n_cycles: int | None = None, n_inputs: int | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, labels)`` from a loader batch ``(spikes, labels)`` or the seed's ``(spikes, _, labels)``.

    With ``n_cycles``/``n_inputs`` the data's layout is checked first (:func:`check_layout`).
    """
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise DataError("a loader batch must be (data, labels) or (data, _, labels); "
                        f"got {type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
    data, labels = batch[0], batch[-1]
    if not isinstance(data, torch.Tensor):
        data = torch.as_tensor(np.asarray(data))
    labels = torch.as_tensor(labels).long()
    check_layout(data, n_cycles, n_inputs, "batch data")
    if labels.dim() != 1 or labels.shape[0] != data.shape[1]:
        raise DataError(f"labels must be [B] with B = data.shape[1] = {data.shape[1]}, got {list(labels.shape)}")
    return data, labels


def collect(source, n_samples: int | None = None, n_cycles: int | None = None, n_inputs: int | None = None,
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """All samples of a loader, of one batch tuple, or of a spike array ``[T, B, n]``, as
    ``(uint8 spikes [T, N, n], labels [N])``.

    ``n_samples`` keeps the first N samples. Labels are ``None`` for a bare spike array. With
    ``n_cycles``/``n_inputs`` the layout is checked (:func:`check_layout`).
    """
    if isinstance(source, (np.ndarray, torch.Tensor)):
        spikes = np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source)
        check_layout(spikes, n_cycles, n_inputs, "spike array")
        labels = None
    else:
        if isinstance(source, (tuple, list)) and len(source) in (2, 3) and hasattr(source[0], "shape"):
            batches = [source]  # a single (spikes, labels) batch
        else:
            batches = source
        chunks, label_chunks, have = [], [], 0
        for batch in batches:
            data, target = split_batch(batch, n_cycles, n_inputs)
            chunks.append(data.detach().cpu().numpy())
            label_chunks.append(target.cpu().numpy())
            have += len(target)
            if n_samples is not None and have >= n_samples:
                break
        if not chunks:
            raise DataError("the loader yielded no samples")
        if len({c.shape[0] for c in chunks}) != 1:
            raise DataError("all batches must have the same number of time steps")
        spikes = np.concatenate(chunks, axis=1)
        labels = np.concatenate(label_chunks)[:n_samples].astype(np.int64)
    spikes = spikes[:, :n_samples]
    if spikes.shape[1] == 0:
        raise DataError("no samples")
    check_spikes(spikes)
    return spikes.astype(np.uint8), labels


def load(name: str | Path, n_cycles: int, encoding: str = "rate", batch_size: int = 128,
         seed: int = 0, test_fraction: float = 0.2, threshold: float = 0.5,
         ) -> tuple[DataLoader, DataLoader]:
    """``(train_loader, test_loader)`` for ``digits``, ``mnist1d`` or a path to an ``.npz``
    (``x``/``y`` with optional ``split`` and group key, or ``x_train``/``y_train``/``x_test``/``y_test``:
    :func:`spiker.data.datasets.npz`, docs/flow-spec.md "Datasets").

    The train/test split and the spike encoding are fixed by ``seed``; the train
    loader reshuffles every epoch from a generator seeded with ``seed``.
    """
    if not isinstance(n_cycles, int) or isinstance(n_cycles, bool) or n_cycles < 1:
        raise DataError(f"n_cycles must be a positive integer, got {n_cycles!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if name == "digits":
        split = datasets.digits(test_fraction=test_fraction, seed=seed)
    elif name == "mnist1d":
        split = datasets.mnist1d()
    elif str(name).endswith(".npz"):
        split = datasets.npz(name, test_fraction=test_fraction, seed=seed)
    else:
        raise DataError(f"unknown dataset {name!r}: use 'digits', 'mnist1d' or a path to an .npz file")
    train_spikes = encode(split.x_train, n_cycles, encoding, seed=seed, threshold=threshold)
    test_spikes = encode(split.x_test, n_cycles, encoding, seed=seed + 1, threshold=threshold)
    log.info("dataset %s: %d train / %d test samples, %d inputs, %d steps, %s encoding",
             name, len(train_spikes), len(test_spikes), train_spikes.shape[2], n_cycles, encoding)
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(SpikeDataset(train_spikes, split.y_train), batch_size=batch_size,
                       shuffle=True, generator=generator, collate_fn=time_first)
    test = DataLoader(SpikeDataset(test_spikes, split.y_test), batch_size=batch_size,
                      shuffle=False, collate_fn=time_first)
    return train, test
