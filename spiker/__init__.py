"""spiker: build, train, quantize and generate FPGA accelerators for spiking neural networks.

The public API is the seed README's::

    from spiker import NetBuilder, Trainer, Optimizer, VhdlGenerator
"""

import logging

from spiker import data, nir, plots
from spiker.errors import DataError, InfeasibleConfigError, SpecError, SpikerError, ToolError
from spiker.golden import FixedPointConfig, QuantizedNet, quantize
from spiker.hdl import Design, SimReport, VhdlGenerator
from spiker.net import NetBuilder, NetSpec, SpikingNet
from spiker.optimize import Optimizer, SweepResult
from spiker.training import History, Trainer

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "DataError", "Design", "FixedPointConfig", "History", "InfeasibleConfigError", "NetBuilder", "NetSpec", "Optimizer",
    "QuantizedNet", "SpecError", "SpikerError", "SpikingNet", "SweepResult", "ToolError", "Trainer", "data",
    "quantize", "SimReport", "VhdlGenerator", "nir", "plots",
]
