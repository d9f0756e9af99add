"""The generated design: VHDL files plus the integers they were made from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiker.golden import QuantizedNet
from spiker.hdl import interface
from spiker.hdl.interface import GEN_FILES, RTL_FILES, Geometry, geometry

if TYPE_CHECKING:  # the operations on a design, each in its module (which imports this one)
    from spiker.hdl.implement import ImplementReport
    from spiker.hdl.kit import Kit
    from spiker.hdl.resources import Resources
    from spiker.hdl.sim import SimReport


@dataclass
class Design:
    """A generated accelerator: ``files`` (name -> VHDL, in analysis order) and ``quantized``."""

    quantized: QuantizedNet
    files: dict[str, str] = field(default_factory=dict)
    #: present input spikes each layer visits per cycle (the generator's ``events_per_cycle``)
    events_per_cycle: int = 2
    #: neuron update units per layer, P (the generator's ``neurons_per_cycle``; None: all fully parallel)
    neurons_per_cycle: tuple[int, ...] | None = None
    #: width of the fixed-width stream top this design is implemented with (8/16/32/64; None: the
    #: parallel top); :meth:`implement` uses it unless given one (the generator's ``stream_width``)
    stream_width: int | None = None
    #: a register between each fully parallel layer's weight ROM and its neurons (the generator's
    #: ``row_register``)
    row_register: bool = True

    #: entity names (:mod:`spiker.hdl.interface`)
    top = interface.TOP
    core = interface.CORE
    testbench = interface.TESTBENCH

    @property
    def geometry(self) -> Geometry:
        """Layer sizes and interface widths (:class:`spiker.hdl.interface.Geometry`)."""
        return geometry(self.quantized)

    @property
    def library_files(self) -> list[str]:
        return [name for name in RTL_FILES if name in self.files]

    @property
    def generated_files(self) -> list[str]:
        return [name for name in GEN_FILES if name in self.files]

    @property
    def design_files(self) -> list[str]:
        """Files that make the synthesizable design (no testbench), in analysis order."""
        return [name for name in self.files if name != f"{self.testbench}.vhd"]

    def code(self) -> str:
        """The whole design (library, package, core, top, testbench) as one analysable VHDL text."""
        return "\n".join(f"-- ==== {name} ====\n{text}" for name, text in self.files.items())

    def write(self, folder: str | Path) -> list[Path]:
        """Write every file into ``folder`` (created); returns the paths in analysis order."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.files.items():
            path = folder / name
            path.write_text(text)
            paths.append(path)
        (folder / "files.txt").write_text("\n".join(self.files) + "\n")
        return paths

    def with_file(self, name: str, text: str) -> Design:
        """A copy with one file replaced (e.g. a deliberately corrupted package for a test)."""
        files = dict(self.files)
        files[name] = text
        return Design(quantized=self.quantized, files=files, events_per_cycle=self.events_per_cycle,
                      neurons_per_cycle=self.neurons_per_cycle, stream_width=self.stream_width,
                      row_register=self.row_register)

    def simulate(self, data: Any, n_samples: int | None = None, trace: bool = False, workers: int = 1,
                 timeout: float | None = None, wave: str | Path | None = None, wave_sample: int = 0,
                 keep: str | Path | None = None) -> SimReport:
        """Simulate in GHDL against the golden model; see :func:`spiker.hdl.sim.simulate`."""
        from spiker.hdl.sim import simulate

        return simulate(self, data, n_samples=n_samples, trace=trace, workers=workers, timeout=timeout,
                        wave=wave, wave_sample=wave_sample, keep=keep)

    def export_testbench(self, folder: str | Path, data: Any, n_samples: int | None = None, **kwargs: Any) -> Kit:
        """Write the verification kit (design, self-checking AXI4-Stream testbench, golden vectors, run
        script) into ``folder``; see :func:`spiker.hdl.kit.export_testbench`."""
        from spiker.hdl.kit import export_testbench

        return export_testbench(self, folder, data, n_samples, **kwargs)

    def estimate_resources(self, **kwargs: Any) -> Resources:
        """LUT/FF/carry/BRAM/DSP/latch counts from GHDL synthesis + yosys; see :mod:`spiker.hdl.resources`."""
        from spiker.hdl.resources import estimate_resources

        return estimate_resources(self, **kwargs)

    def implement(self, target: str = "ecp5-85k", **kwargs: Any) -> ImplementReport:
        """Place and route on an FPGA part (utilisation, Fmax, latency); see :mod:`spiker.hdl.implement`."""
        from spiker.hdl.implement import implement

        kwargs.setdefault("stream_width", self.stream_width)
        return implement(self, target, **kwargs)
