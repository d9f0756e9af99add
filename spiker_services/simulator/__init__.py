"""Simulator service: ``spiker.v1.SimulatorService`` over GHDL simulation against the golden model."""

from spiker_services.simulator.servicer import SimulatorServicer

__all__ = ["SimulatorServicer"]
