"""Optimizer service: ``spiker.v1.OptimizerService`` over :class:`spiker.Optimizer`, plus the sweep worker."""

from services.optimizer.servicer import OptimizerServicer

__all__ = ["OptimizerServicer"]
