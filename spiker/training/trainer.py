"""Trainer: BPTT with snnTorch surrogate gradients, reporting what the hardware will report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from snntorch import functional as SF

from spiker import readout, threads
from spiker.data import check_spikes, split_batch
from spiker.errors import SpecError
from spiker.net.denormals import flush_denormals
from spiker.net.model import SpikingNet
from spiker.progress import progress

log = logging.getLogger(__name__)

LOSSES: dict[str, Callable[[], Callable]] = {
    "ce_rate": SF.ce_rate_loss,      # cross entropy at every step (snnTorch tutorials)
    "ce_count": SF.ce_count_loss,    # cross entropy on spike counts
    "mse_count": lambda: SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2),
}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_loss(name: str) -> Callable:
    """A loss on output spikes ``[T, B, C]`` and labels ``[B]`` by name (see ``LOSSES``)."""
    if name not in LOSSES:
        raise SpecError("train.loss", f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]()


@dataclass
class History:
    """Per-epoch metrics over whole loaders; accuracy is the spike-count readout."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    #: samples of one training epoch and of one test pass (what the accuracies are over)
    n_train: int = 0
    n_test: int = 0

    @property
    def final_test_accuracy(self) -> float:
        return self.test_accuracy[-1] if self.test_accuracy else float("nan")

    @property
    def wall_time(self) -> float:
        return float(sum(self.seconds))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(**{k: list(v) if isinstance(v, list) else int(v) for k, v in data.items()})

    def plot(self, path: str | Path | None = None, ax: Any = None) -> Any:
        """The training curve (loss and accuracy per epoch) as a matplotlib ``Figure``.

        ``ax``: draw into this Axes (loss on it, accuracy on a twin axis) or a pair of Axes
        ``(loss, accuracy)``; by default a new two-panel figure is made without pyplot, so no
        backend is chosen or changed. ``path``: also save the figure there (PNG).
        """
        from spiker.plots import new_figure, save_figure

        if ax is None:
            fig = new_figure(figsize=(9, 3.5))
            ax_loss, ax_acc = fig.subplots(1, 2)
        elif isinstance(ax, (list, tuple)):
            ax_loss, ax_acc = ax
            fig = ax_loss.figure
        else:
            ax_loss, ax_acc = ax, ax.twinx()
            fig = ax.figure
        ax_loss.plot(self.epoch, self.train_loss, "o-", label="train loss")
        ax_loss.plot(self.epoch, self.test_loss, "o-", label="test loss")
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_acc.plot(self.epoch, self.train_accuracy, "s--", label="train accuracy")
        ax_acc.plot(self.epoch, self.test_accuracy, "s--", label="test accuracy")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (spike count argmax)", title="Accuracy")
        for axis in (ax_loss, ax_acc):
            axis.grid(alpha=0.3)
            axis.legend()
        if ax is None:
            fig.tight_layout()
        if path is not None:
            save_figure(fig, path)
        return fig


def evaluate(net: SpikingNet, loader: Iterable, loss_fn: Callable | None = None,
             device: str | torch.device = "cpu", counted: list[int] | None = None) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of a float network over a whole loader (``counted``: gets the sample count)."""
    loss_fn = loss_fn or make_loss("ce_rate")
    net.eval()
    total_loss, total_correct, total = 0.0, 0, 0
    with torch.no_grad(), flush_denormals(), threads.limit(threads.train_threads()):
        for batch in loader:
            data, labels = split_batch(batch, net.spec.n_cycles, net.spec.n_inputs)
            check_spikes(data)
            data, labels = data.to(device), labels.to(device)
            spikes = net(data).spikes
            total_loss += float(loss_fn(spikes, labels)) * len(labels)
            total_correct += readout.correct(spikes.sum(0), labels)
            total += len(labels)
    if counted is not None:
        counted.append(total)
    return total_loss / max(total, 1), total_correct / max(total, 1)


class Trainer:
    """Train a :class:`SpikingNet` with backpropagation through time.

    ``epochs``, ``lr``, ``loss`` (``ce_rate``, ``ce_count``, ``mse_count``),
    ``optimizer`` (``adam``, ``adamw``, ``sgd``), ``seed`` and ``device`` are set here;
    ``train`` may override ``epochs``.

    ``seed`` seeds torch's global generator when ``train`` starts (dropout-free nets use it
    only for anything random inside the loss or optimizer). It does NOT fix the initial
    weights, which exist before the Trainer does: use ``NetBuilder(net_dict).build(seed=...)``
    for those, and the loader's own seed (``spiker.data.load(..., seed=...)``) for the data
    order. With all three seeds fixed a CPU run replays exactly.

    Every batch is checked like every other stage checks input: time-first
    ``[n_cycles, B, n_inputs]`` 0/1 spikes (``spiker.data.check_input``).
    """

    def __init__(self, snn: SpikingNet, epochs: int = 10, lr: float = 2e-3, loss: str = "ce_rate",
                 optimizer: str = "adam", seed: int = 0, device: str = "cpu",
                 progress: bool = True, on_epoch: Callable[[History], None] | None = None) -> None:
        if not isinstance(snn, SpikingNet):
            raise TypeError(f"Trainer needs a SpikingNet from NetBuilder.build(), got {type(snn).__name__}")
        if optimizer not in OPTIMIZERS:
            raise SpecError("train.optimizer",
                            f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise SpecError("train.lr", f"must be a positive number, got {lr!r}")
        self.snn = snn
        self.epochs = epochs
        self.lr = float(lr)
        self.loss_name = loss
        self.loss_fn = make_loss(loss)
        self.optimizer_name = optimizer
        self.seed = seed
        self.device = torch.device(device)
        self.progress = progress
        #: called with the History after every epoch (progress reporting, early inspection)
        self.on_epoch = on_epoch
        self.history = History()

    def evaluate(self, loader: Iterable) -> tuple[float, float]:
        """``(mean loss, accuracy)`` over a whole loader."""
        return evaluate(self.snn, loader, self.loss_fn, self.device)

    def train(self, train_loader: Iterable, test_loader: Iterable, epochs: int | None = None,
              ) -> History:
        """Train for ``epochs`` and return the :class:`History` (also kept in ``self.history``)."""
        epochs = self.epochs if epochs is None else epochs
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise SpecError("train.epochs", f"must be a positive integer, got {epochs!r}")
        # a fixed thread count: the same numbers on every host (see spiker.threads)
        with flush_denormals(), threads.limit(threads.train_threads()):
            return self._train(train_loader, test_loader, epochs)

    def _train(self, train_loader: Iterable, test_loader: Iterable, epochs: int) -> History:
        torch.manual_seed(self.seed)
        net = self.snn.to(self.device)
        optimizer = OPTIMIZERS[self.optimizer_name](net.parameters(), lr=self.lr)
        start_epoch = len(self.history.epoch)
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            started = time.perf_counter()
            net.train()
            total_loss, total_correct, total = 0.0, 0, 0
            bar = progress(train_loader, desc=f"epoch {epoch}/{start_epoch + epochs}", leave=False,
                           enabled=self.progress, unit="batch")
            for batch in bar:
                data, labels = split_batch(batch, net.spec.n_cycles, net.spec.n_inputs)
                check_spikes(data)
                data, labels = data.to(self.device), labels.to(self.device)
                spikes = net(data).spikes
                loss = self.loss_fn(spikes, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(labels)
                total_correct += readout.correct(spikes.detach().sum(0), labels)
                total += len(labels)
                bar.set_postfix(train_loss=total_loss / total, train_acc=total_correct / total)
            if total == 0:
                raise SpecError("train_loader", "yielded no batches")
            counted: list[int] = []
            test_loss, test_acc = evaluate(self.snn, test_loader, self.loss_fn, self.device, counted)
            h = self.history
            h.n_train, h.n_test = total, counted[0]
            h.epoch.append(epoch)
            h.train_loss.append(total_loss / total)
            h.train_accuracy.append(total_correct / total)
            h.test_loss.append(test_loss)
            h.test_accuracy.append(test_acc)
            h.seconds.append(time.perf_counter() - started)
            log.info("epoch %d: train loss %.4f, train acc %.4f | test loss %.4f, test acc %.4f | %.1fs",
                     epoch, h.train_loss[-1], h.train_accuracy[-1], test_loss, test_acc, h.seconds[-1])
            if self.on_epoch is not None:
                self.on_epoch(h)
        net.snap_learned_leaks()
        return self.history
