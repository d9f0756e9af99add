"""The flow's stages on one output folder: each reuses earlier outputs or runs them first.

Folder layout (``--out DIR``): ``model.pt``, ``history.json``, ``training.png``,
``train.json`` (stage record), ``sweep.csv``, ``sweep.json``, ``pareto.png``,
``optim_params.json``. A stage record holds the digest of the spec sections it
depends on; a changed spec reruns the stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader

from spiker import data
from spiker.errors import DataError, SpecError
from spiker.flow.spec import FlowSpec
from spiker.golden.fixed_point import FixedPointConfig
from spiker.net.builder import build_net
from spiker.net.model import SpikingNet
from spiker.optimize.optimizer import Optimizer
from spiker.optimize.sweep import SweepResult
from spiker.training.trainer import History, Trainer

if TYPE_CHECKING:
    from spiker.hdl.design import Design

log = logging.getLogger(__name__)


def load_data(spec: FlowSpec) -> tuple[DataLoader, DataLoader]:
    """The spec's train and test loaders."""
    ds = spec.dataset
    train, test = data.load(ds.name, n_cycles=spec.net_spec.n_cycles, encoding=ds.encoding,
                            batch_size=ds.batch_size, seed=ds.seed, test_fraction=ds.test_fraction,
                            threshold=ds.threshold)
    net = spec.net_spec
    what = Path(ds.name).name if ds.name.endswith(".npz") else ds.name  # the user's file, never a job folder
    for loader in (train, test):
        spikes, labels = loader.dataset.spikes, loader.dataset.labels
        if spikes.shape[-1] != net.n_inputs:
            raise DataError(f"{what}: the data has {spikes.shape[-1]} inputs per sample but net.n_inputs is "
                            f"{net.n_inputs}")
        if len(labels) and int(labels.max()) >= net.n_outputs:
            raise DataError(f"{what}: label {int(labels.max())} does not fit the net's {net.n_outputs} outputs "
                            f"(labels must be 0..{net.n_outputs - 1})")
    return train, test


def _record_matches(out: Path, stage: str, digest: str) -> bool:
    path = out / f"{stage}.json"
    return path.is_file() and json.loads(path.read_text()).get("digest") == digest


def _write_record(out: Path, stage: str, digest: str, **extra: Any) -> None:
    (out / f"{stage}.json").write_text(json.dumps({"stage": stage, "digest": digest, **extra}, indent=1))


def train(spec: FlowSpec, out: Path, progress: bool = True,
          on_epoch: Callable[[History], None] | None = None) -> tuple[SpikingNet, History]:
    """Train (or reuse ``out/model.pt`` when dataset, net and train settings are unchanged).

    ``on_epoch``: called with the History after every epoch (see :class:`Trainer`).
    """
    out.mkdir(parents=True, exist_ok=True)
    if spec.model is not None:
        return given_model(spec, out)
    digest = spec.digest("dataset", "net", "train")
    if _record_matches(out, "train", digest) and (out / "model.pt").is_file():
        log.info("train: reusing %s", out / "model.pt")
        return SpikingNet.load(out / "model.pt"), History.from_dict(json.loads((out / "history.json").read_text()))
    train_loader, test_loader = load_data(spec)
    snn = build_net(spec.net_spec, seed=spec.train.seed)  # the spec's parsed net, not a second parse
    t = spec.train
    history = Trainer(snn, epochs=t.epochs, lr=t.lr, loss=t.loss, optimizer=t.optimizer, seed=t.seed,
                      progress=progress, on_epoch=on_epoch).train(train_loader, test_loader)
    snn.save(out / "model.pt")
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
    history.plot(out / "training.png")
    _write_record(out, "train", digest, test_accuracy=history.final_test_accuracy,
                  seconds=history.wall_time)
    return snn, history


def given_model(spec: FlowSpec, out: Path) -> tuple[SpikingNet, History]:
    """The spec's ``model.nir`` as ``out/model.pt`` instead of training (an empty History)."""
    from spiker import nir as spiker_nir

    model = spec.model
    if model is None or model.nir is None:
        raise SpecError("model.artifact", "names an upload to the gateway; the stage commands read model.nir")
    path = Path(model.nir)
    if not path.is_file():
        raise SpecError("model.nir", f"file not found: {path}")
    digest = hashlib.sha256((spec.digest("net", "model") + hashlib.sha256(path.read_bytes()).hexdigest())
                            .encode()).hexdigest()
    if _record_matches(out, "train", digest) and (out / "model.pt").is_file():
        log.info("train: reusing %s (from %s)", out / "model.pt", path)
        return SpikingNet.load(out / "model.pt"), History()
    snn = spiker_nir.load(path, **{**model.load_args(), "n_cycles": spec.net_spec.n_cycles})
    if snn.spec.sizes != spec.net_spec.sizes:
        raise SpecError("net", f"describes {'-'.join(map(str, spec.net_spec.sizes))} but {path} is "
                               f"{'-'.join(map(str, snn.spec.sizes))}")
    snn.save(out / "model.pt")
    history = History()
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
    (out / "training.png").unlink(missing_ok=True)
    _write_record(out, "train", digest, source=str(path), trained=False)
    log.info("train: skipped, model from %s (%s)", path, "-".join(map(str, snn.spec.sizes)))
    return snn, history


def optimize(spec: FlowSpec, out: Path, progress: bool = True) -> SweepResult:
    """Sweep bit-widths on the test set (reusing ``sweep.json`` when unchanged)."""
    snn, _ = train(spec, out, progress)
    digest = spec.digest("dataset", "net", "train", "optimize")
    if _record_matches(out, "optimize", digest) and (out / "sweep.json").is_file():
        log.info("optimize: reusing %s", out / "sweep.json")
        return SweepResult.from_json(out / "sweep.json")
    _, test_loader = load_data(spec)
    result = Optimizer(snn, spec.net, spec.optimize.ranges, n_workers=spec.optimize.workers,
                       loss=spec.train.loss, progress=progress,
                       hardware=spec.optimize.hardware).optimize(test_loader)
    result.to_csv(out / "sweep.csv")
    result.to_json(out / "sweep.json")
    result.plot_pareto(out / "pareto.png")
    _write_record(out, "optimize", digest, configs=len(result.rows))
    return result


def select(spec: FlowSpec, out: Path, progress: bool = True) -> dict[str, int]:
    """The bit-widths to build: explicit ``select.optim_params`` or the policy over the sweep.

    From the sweep: a :class:`~spiker.optimize.sweep.Selection` (the optim_params dict with the
    hardware knobs and the reason), also written to ``selection.json``; the Pareto plot is
    redrawn with it marked.
    """
    out.mkdir(parents=True, exist_ok=True)
    if spec.select.optim_params is not None:
        params = FixedPointConfig.from_dict(spec.select.optim_params, "select.optim_params").to_dict()
        source = "spec"
        (out / "selection.json").unlink(missing_ok=True)
    else:
        result = optimize(spec, out, progress)
        params = result.select(**spec.select.policy)
        source = f"sweep: {params.reason}"
        (out / "selection.json").write_text(json.dumps(params.to_dict(), indent=1))
        result.plot_pareto(out / "pareto.png", params)
    (out / "optim_params.json").write_text(json.dumps(dict(params), indent=1))
    log.info("optim_params %s (from %s)", params, source)
    return params


def hdl(spec: FlowSpec, out: Path, progress: bool = True, resources: bool | str | None = None,
        testbench: int | None = None) -> Design:
    """Generate the accelerator at the selected bit-widths into ``out/hdl`` (and ``resources.json``
    when ``resources``: a method of ``spiker.optimize.cost_model.METHODS``, True for "synth", False for
    none, by default the spec's ``hdl.resources``; the verification kit on ``testbench`` test
    samples into ``out/testbench``, by default the spec's ``hdl.testbench``)."""
    from spiker.flow.spec import resource_method
    from spiker.hdl import VhdlGenerator
    from spiker.optimize.cost_model import design_resources

    snn, _ = train(spec, out, progress)
    params = select(spec, out, progress)
    knobs = {k: v for k, v in getattr(params, "hardware", {}).items() if v is not None}
    for key in ("events_per_cycle", "neurons_per_cycle", "row_register"):  # the spec's hdl section wins
        if getattr(spec.hdl, key) is not None:
            knobs[key] = getattr(spec.hdl, key)
    design = VhdlGenerator(snn, dict(params), **knobs).generate()
    folder = out / "hdl"
    unchanged = all((folder / name).is_file() and (folder / name).read_text() == text
                    for name, text in design.files.items())
    design.write(folder)
    if not unchanged and (out / "resources.json").exists():
        (out / "resources.json").unlink()  # it describes the previous design
        log.info("removed resources.json of the previous design")
    method = spec.hdl.resources if resources is None else resource_method(resources)
    if method:
        res = design_resources(design, method)
        (out / "resources.json").write_text(json.dumps(res.to_dict(), indent=1))
        log.info("resources: %s", res.summary())
    n_tb = spec.hdl.testbench if testbench is None else testbench
    if n_tb:
        _, test_loader = load_data(spec)
        design.export_testbench(out / "testbench", test_loader, n_samples=n_tb)
    return design


def simulate(spec: FlowSpec, out: Path, samples: int | None = None, trace: bool | None = None,
             progress: bool = True, wave: str | Path | None = None, wave_sample: int = 0):
    """Co-simulate the generated design in GHDL on test samples; writes ``out/sim.json`` (and with
    ``wave`` the waveform of test sample ``wave_sample``: VCD for ``.vcd``, GHW for ``.ghw``)."""
    design = hdl(spec, out, progress, resources=False)
    _, test_loader = load_data(spec)
    report = design.simulate(test_loader, n_samples=samples or spec.simulate.samples,
                             trace=spec.simulate.trace if trace is None else trace,
                             workers=spec.simulate.workers, wave=wave, wave_sample=wave_sample)
    (out / "sim.json").write_text(json.dumps(report.to_dict(), indent=1))
    return report


def implement(spec: FlowSpec, out: Path, progress: bool = True, samples: int | None = None, **overrides: Any):
    """Place and route the generated design (``implement`` section, ``overrides`` win) into
    ``out/implement``; cycles per inference from a short GHDL run; writes ``out/implement.json``."""
    from dataclasses import asdict

    from spiker.flow.spec import ImplementSection

    section = asdict(spec.implement or ImplementSection())
    section.update({k: v for k, v in overrides.items() if v is not None})
    from spiker.hdl.targets import target as check_target

    check_target(section["target"], speed=section["speed"], package=section["package"])  # before the slow part
    design = hdl(spec, out, progress, resources=False)
    _, test_loader = load_data(spec)
    sim = design.simulate(test_loader, n_samples=samples or min(spec.simulate.samples, 20),
                          workers=spec.simulate.workers)
    target = section.pop("target")
    report = design.implement(target, sim=sim, keep=out / "implement", **section)
    (out / "implement.json").write_text(json.dumps(report.to_dict(), indent=1))
    return report
