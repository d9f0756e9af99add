"""Training of spiking networks."""

from spiker.training.trainer import History, Trainer, evaluate, make_loss

__all__ = ["History", "Trainer", "evaluate", "make_loss"]
