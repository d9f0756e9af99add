"""The hdlgen job, run in a child process on local files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiker.hdl import VhdlGenerator
from spiker.net.model import SpikingNet
from spiker.optimize.cost_model import design_resources
from spiker_api.convert import dataset_in_workdir
from spiker_services.common.child import report
from spiker_services.common.vhdl_tar import INDEX, write_tar


@dataclass(frozen=True)
class ResourcesOutput:
    """The resource estimate: its file (resources.json), how it was made, its numeric counts."""

    path: str
    method: str
    counts: dict[str, float]


@dataclass(frozen=True)
class ImplementationOutput:
    """A place-and-route result: its file (implement.json) and headline numbers."""

    path: str
    fits: bool
    met: bool
    status: str
    fmax_mhz: float | None
    critical_path: str  #: ``start -> end`` of the critical path, "" when there is none
    utilisation: dict[str, tuple[int, int]]  #: resource -> (used, available)


@dataclass(frozen=True)
class GenerateOutput:
    """A generate job's result: the VHDL tar and what the design is, and the optional extras."""

    tar: str
    files: list[str]
    top: str
    optim_params: dict[str, int]
    events_per_cycle: int
    neurons_per_cycle: list[int]
    row_register: bool
    resources: ResourcesOutput | None = None
    implementation: ImplementationOutput | None = None
    testbench_tar: str | None = None


def generate_job(workdir: str, model: str, optim_params: dict[str, int], estimate_resources: bool,
                 events_per_cycle: int | None = None, neurons_per_cycle: Any = None, resources_method: str = "synth",
                 implement: dict[str, Any] | None = None, testbench: int | None = None,
                 dataset: dict[str, Any] | None = None, row_register: bool | None = None) -> GenerateOutput:
    """Generate the design, write it as a tar; optionally estimate resources.

    ``events_per_cycle``, ``row_register`` (None: the generator's defaults) and ``neurons_per_cycle``
    are VhdlGenerator's knobs; ``resources_method``: ``synth`` (GHDL + yosys) or ``fast`` (the cost
    model's estimate, no synthesis; spiker.optimize.cost_model.METHODS); ``implement``: keyword
    arguments of ``design.implement`` (target, ...);
    ``testbench``: samples of ``dataset``'s test split for the verification kit (its own tar).
    """
    out = Path(workdir) / "out"
    snn = SpikingNet.load(model)
    knobs: dict[str, Any] = {"neurons_per_cycle": neurons_per_cycle}
    if events_per_cycle is not None:
        knobs["events_per_cycle"] = events_per_cycle
    if row_register is not None:
        knobs["row_register"] = row_register
    design = VhdlGenerator(snn, optim_params, **knobs).generate()
    folder = out / "vhdl"
    design.write(folder)
    names = list(design.files)
    report("generated", f"{len(names)} VHDL files for {design.top}", len(names), len(names))
    tar = str(write_tar(folder, names, out / "vhdl.tar"))
    resources = None
    if estimate_resources:
        report("synthesizing" if resources_method == "synth" else "estimating",
               "GHDL + yosys resource estimate" if resources_method == "synth" else "cost-model resource estimate")
        estimate = design_resources(design, resources_method).to_dict()
        (out / "resources.json").write_text(json.dumps(estimate, indent=1, sort_keys=True) + "\n")
        resources = ResourcesOutput(path=str(out / "resources.json"), method=estimate["method"],
                                    counts={k: v for k, v in estimate.items()
                                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
    testbench_tar = None
    if testbench:
        from spiker import data

        report("testbench", f"verification kit on {testbench} test samples")
        _, test_loader = data.load(n_cycles=snn.spec.n_cycles, **dataset_in_workdir(dataset, workdir))
        kit_folder = out / "testbench"
        design.export_testbench(kit_folder, test_loader, n_samples=testbench)
        kit_names = sorted(p.name for p in kit_folder.iterdir() if p.name != INDEX)
        testbench_tar = str(write_tar(kit_folder, kit_names, out / "testbench.tar"))
    implementation = None
    if implement:
        report("implementing", f"place and route on {implement['target']} (minutes)")
        impl = design.implement(keep=out / "implement", bitstream=False, **implement)
        (out / "implement.json").write_text(json.dumps(impl.to_dict(), indent=1, sort_keys=True) + "\n")
        path = impl.critical_path
        implementation = ImplementationOutput(
            path=str(out / "implement.json"), fits=impl.fits, met=impl.met, status=impl.status,
            fmax_mhz=impl.fmax_mhz, critical_path="" if path is None else f"{path.start} -> {path.end}",
            utilisation={k: (u.used, u.available) for k, u in impl.utilisation.items()})
    return GenerateOutput(tar=tar, files=names, top=design.top, optim_params=design.quantized.config.to_dict(),
                          events_per_cycle=design.events_per_cycle, row_register=design.row_register,
                          neurons_per_cycle=list(design.neurons_per_cycle or []), resources=resources,
                          implementation=implementation, testbench_tar=testbench_tar)
