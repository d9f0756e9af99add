"""Trainer service: ``spiker.v1.TrainerService`` over :class:`spiker.Trainer`."""

from services.trainer.servicer import TrainerServicer

__all__ = ["TrainerServicer"]
