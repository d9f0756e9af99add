"""VHDL generation and GHDL simulation of bit-exact SNN accelerators.

``VhdlGenerator(snn, optim_params).generate()`` returns a :class:`Design`; its
``simulate`` runs it in GHDL against the golden model and ``estimate_resources``
synthesizes it with GHDL + yosys. The hand-written RTL library is in ``rtl/``, the
generated files' templates in ``templates/``; :mod:`spiker.hdl.interface` declares the file
lists, entity names, geometry and AXI4-Stream ports that every module here reads.
"""

from spiker.hdl.design import Design
from spiker.hdl.generator import VhdlGenerator
from spiker.hdl.interface import RTL_DIR, RTL_FILES, rtl_sources
from spiker.hdl.sim import Mismatch, SimReport, simulate

__all__ = ["Design", "Mismatch", "RTL_DIR", "RTL_FILES", "SimReport", "VhdlGenerator", "rtl_sources",
           "simulate"]
