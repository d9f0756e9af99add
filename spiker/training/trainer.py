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
from tqdm.auto import tqdm

from spiker import readout
from spiker.data import split_batch
from spiker.errors import SpecError
from spiker.net.denormals import flush_denormals
from spiker.net.model import SpikingNet

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
        return cls(**{k: list(v) for k, v in data.items()})

    def plot(self, path: str | Path) -> Path:
        """Save the training curve (loss and accuracy per epoch) as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax_loss.plot(self.epoch, self.train_loss, "o-", label="train")
        ax_loss.plot(self.epoch, self.test_loss, "o-", label="test")
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_acc.plot(self.epoch, self.train_accuracy, "o-", label="train")
        ax_acc.plot(self.epoch, self.test_accuracy, "o-", label="test")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (spike count argmax)", title="Accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def evaluate(net: SpikingNet, loader: Iterable, loss_fn: Callable | None = None,
             device: str | torch.device = "cpu") -> tuple[float, float]:
    """``(mean loss, accuracy)`` of a float network over a whole loader."""
    loss_fn = loss_fn or make_loss("ce_rate")
    net.eval()
    total_loss, total_correct, total = 0.0, 0, 0
    with torch.no_grad(), flush_denormals():
        for batch in loader:
            data, labels = split_batch(batch)
            data, labels = data.to(device), labels.to(device)
            spikes = net(data).spikes
            total_loss += float(loss_fn(spikes, labels)) * len(labels)
            total_correct += readout.correct(spikes.sum(0), labels)
            total += len(labels)
    return total_loss / max(total, 1), total_correct / max(total, 1)


class Trainer:
    """Train a :class:`SpikingNet` with backpropagation through time.

    ``epochs``, ``lr``, ``loss`` (``ce_rate``, ``ce_count``, ``mse_count``),
    ``optimizer`` (``adam``, ``adamw``, ``sgd``), ``seed`` and ``device`` are set here;
    ``train`` may override ``epochs``.
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
        with flush_denormals():
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
            bar = tqdm(train_loader, desc=f"epoch {epoch}/{start_epoch + epochs}", leave=False,
                       disable=not self.progress, unit="batch")
            for batch in bar:
                data, labels = split_batch(batch)
                data, labels = data.to(self.device), labels.to(self.device)
                spikes = net(data).spikes
                loss = self.loss_fn(spikes, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(labels)
                total_correct += readout.correct(spikes.detach().sum(0), labels)
                total += len(labels)
                bar.set_postfix(loss=f"{total_loss / total:.3f}", acc=f"{total_correct / total:.3f}")
            if total == 0:
                raise SpecError("train_loader", "yielded no batches")
            test_loss, test_acc = self.evaluate(test_loader)
            h = self.history
            h.epoch.append(epoch)
            h.train_loss.append(total_loss / total)
            h.train_accuracy.append(total_correct / total)
            h.test_loss.append(test_loss)
            h.test_accuracy.append(test_acc)
            h.seconds.append(time.perf_counter() - started)
            log.info("epoch %d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1fs",
                     epoch, h.train_loss[-1], h.train_accuracy[-1], test_loss, test_acc, h.seconds[-1])
            if self.on_epoch is not None:
                self.on_epoch(h)
        net.snap_learned_leaks()
        return self.history
