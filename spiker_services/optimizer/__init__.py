"""Optimizer service: ``spiker.v1.OptimizerService`` over :class:`spiker.Optimizer`, plus the sweep worker."""

from spiker_services.optimizer.servicer import OptimizerServicer

__all__ = ["OptimizerServicer"]
