"""Errors a user can act on: every one names what is wrong and where."""

from __future__ import annotations


class SpikerError(Exception):
    """Base class of every error spiker raises on purpose."""


class SpecError(SpikerError, ValueError):
    """A user-supplied description (net dict, flow spec, config) is invalid.

    ``key`` is the dotted path of the offending entry, e.g. ``layer_1.beta``.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class InfeasibleConfigError(SpikerError, ValueError):
    """A fixed-point configuration cannot represent the network (see docs/fixed-point.md)."""

    def __init__(self, config: object, reason: str) -> None:
        self.config = config
        self.reason = reason
        super().__init__(f"infeasible fixed-point config {config}: {reason}")


class DataError(SpikerError, ValueError):
    """A dataset, loader or batch does not have the shape or content spiker needs."""


class ToolError(SpikerError, RuntimeError):
    """An external tool (GHDL, yosys, iverilog) is missing or failed."""
