"""The simulator job, run in a child process (own process group: GHDL dies with it)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiker import data
from spiker.hdl import VhdlGenerator
from spiker.net.model import SpikingNet
from spiker_api.convert import dataset_in_workdir
from spiker_services.common.child import report
from spiker_services.common.vhdl_tar import read_tar


@dataclass(frozen=True)
class SimulateOutput:
    """A simulate job's result: its files (in the work folder) and the report's headline numbers."""

    report: str  #: sim_report.json: ``SimReport.to_dict()``, the whole report
    waveform: str | None  #: the waveform file, when one was asked for
    samples: int
    mismatches: int
    first_mismatch: str | None
    hw_accuracy: float | None
    golden_accuracy: float | None
    cycles_min: int
    cycles_mean: float
    cycles_max: int


def simulate_job(workdir: str, model: str, optim_params: dict[str, int], vhdl_tar: str | None,
                 dataset: dict[str, Any], n_samples: int | None, trace: bool, workers: int,
                 knobs: dict[str, Any] | None = None, wave: str | None = None,
                 wave_sample: int = 0) -> SimulateOutput:
    """Simulate the design (the given tar, or regenerated) on the test split; write the report.

    ``knobs``: the generator's ``events_per_cycle``/``neurons_per_cycle``/``row_register`` the tar was
    made with (None: the default);
    ``wave``: a file name in the work folder for sample ``wave_sample``'s waveform.
    """
    folder = Path(workdir)
    snn = SpikingNet.load(model)
    design = VhdlGenerator(snn, optim_params, **{k: v for k, v in (knobs or {}).items() if v is not None}).generate()
    if vhdl_tar is not None:
        design = dataclasses.replace(design, files=read_tar(Path(vhdl_tar)))  # the knobs it was made with
    _, test_loader = data.load(n_cycles=snn.spec.n_cycles, **dataset_in_workdir(dataset, folder))
    report("simulating", f"GHDL on {n_samples or 'all'} test samples, {workers} worker(s)"
                         f"{', traced' if trace else ''}")
    waveform = None if wave is None else folder / "out" / wave
    sim = design.simulate(test_loader, n_samples=n_samples, trace=trace, workers=workers, wave=waveform,
                          wave_sample=wave_sample)
    summary = sim.to_dict()
    path = folder / "out" / "sim_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return SimulateOutput(
        report=str(path), waveform=None if waveform is None else str(waveform), samples=sim.n_samples,
        mismatches=int(sim.mismatches), first_mismatch=None if sim.first_mismatch is None else str(sim.first_mismatch),
        hw_accuracy=sim.hw_accuracy, golden_accuracy=sim.golden_accuracy, cycles_min=sim.cycles_min,
        cycles_mean=sim.cycles_mean, cycles_max=sim.cycles_max)
