"""HDL generation service: ``spiker.v1.HdlgenService`` over :class:`spiker.hdl.VhdlGenerator`."""

from spiker_services.hdlgen.servicer import HdlgenServicer

__all__ = ["HdlgenServicer"]
