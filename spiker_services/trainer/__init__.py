"""Trainer service: ``spiker.v1.TrainerService`` over :class:`spiker.Trainer`."""

from spiker_services.trainer.servicer import TrainerServicer

__all__ = ["TrainerServicer"]
