"""The flow spec: one YAML/JSON document describing a whole run (docs/flow-spec.md).

Sections: ``name``, ``dataset``, ``net`` (the seed README's net dict), ``train``,
``optimize`` (the seed's optim_config ranges, plus ``workers``), ``select`` (a
policy or explicit ``optim_params``), ``hdl`` (resource estimation on/off)
and ``simulate``. Every error names its field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from spiker.data.encoders import ENCODINGS
from spiker.errors import InfeasibleConfigError, SpecError
from spiker.flow.spec_text import parse_spec_text
from spiker.golden.fixed_point import FixedPointConfig
from spiker.net.spec import NetSpec, parse_net_dict
from spiker.optimize.optimizer import HARDWARE_KEYS, optim_ranges, parse_hardware
from spiker.optimize.sweep import BUDGETS, OBJECTIVES
from spiker.training.trainer import LOSSES, OPTIMIZERS

#: longest run name (names appear in listings, logs and file names)
MAX_NAME_LENGTH = 128
SECTIONS = ("name", "dataset", "net", "model", "train", "optimize", "select", "hdl", "simulate", "implement")


@dataclass(frozen=True)
class DatasetSection:
    name: str = "digits"
    encoding: str = "rate"
    batch_size: int = 128
    seed: int = 0
    test_fraction: float = 0.2
    threshold: float = 0.5


@dataclass(frozen=True)
class TrainSection:
    epochs: int = 10
    lr: float = 2e-3
    loss: str = "ce_rate"
    optimizer: str = "adam"
    seed: int = 0


@dataclass(frozen=True)
class OptimizeSection:
    ranges: dict[str, dict[str, int]] = field(default_factory=lambda: {
        "weights_bw": {"min": 4, "max": 8}, "neurons_bw": {"min": 6, "max": 12}, "fp_dec": {"min": 2, "max": 6}})
    workers: int = 1
    #: hardware knobs every config is costed at (the Optimizer's ``hardware``)
    events_per_cycle: tuple[int, ...] = (1, 2)
    neurons_per_cycle: tuple[int | None, ...] = (None,)

    @property
    def hardware(self) -> dict[str, list]:
        return {"events_per_cycle": list(self.events_per_cycle), "neurons_per_cycle": list(self.neurons_per_cycle)}


@dataclass(frozen=True)
class SelectSection:
    max_accuracy_drop: float | None = 0.01
    optim_params: dict[str, int] | None = None
    #: ``lut``, ``latency`` or ``bram`` (SweepResult.select) and the budgets on the cost model's estimates
    objective: str = "lut"
    max_lut: float | None = None
    max_ff: float | None = None
    max_bram: float | None = None
    max_cycles: float | None = None

    @property
    def policy(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`SweepResult.select`."""
        return {"max_accuracy_drop": self.max_accuracy_drop, "objective": self.objective,
                **{k: getattr(self, k) for k in BUDGETS if getattr(self, k) is not None}}


@dataclass(frozen=True)
class HdlSection:
    #: how the hdl stage estimates LUT/FF/BRAM/DSP (spiker.optimize.cost_model.METHODS): "synth" GHDL
    #: synth + yosys (the spec's ``true``; minutes for big nets), "fast" the cost model's calibrated
    #: estimate (no synthesis, reported as an estimate), None no estimate (the spec's ``false``)
    resources: str | None = "synth"
    #: the generator's knobs, over the optimizer's selection (None: the selection's, else the
    #: defaults): present spikes per cycle (1 or 2) and neuron update units P per layer
    #: (VhdlGenerator ``neurons_per_cycle``: an int, a list or a mapping layer -> P, resolved
    #: here to one P per layer; P = N is the fully parallel layer)
    events_per_cycle: int | None = None
    neurons_per_cycle: tuple[int, ...] | None = None
    #: a register between each fully parallel layer's weight ROM and its neurons (VhdlGenerator
    #: ``row_register``; None: the generator's default, True; False: the lean layer)
    row_register: bool | None = None
    #: export the verification kit (spiker.hdl.kit) on this many test samples (None: no kit)
    testbench: int | None = None


@dataclass(frozen=True)
class SimulateSection:
    samples: int = 200
    trace: bool = True
    workers: int = 1


@dataclass(frozen=True)
class ModelSection:
    """A given model instead of training (docs/nir.md): a NIR file, or the sha256 of one uploaded
    to the gateway; ``dt``, ``reset_mechanism``, ``strict``, ``n_cycles``: as ``spiker.nir.load``."""

    nir: str | None = None
    artifact: str | None = None
    n_cycles: int | None = None
    dt: float | None = None
    reset_mechanism: str | None = None
    strict: bool = False

    def load_args(self) -> dict[str, Any]:
        """The keyword arguments of ``spiker.nir.load`` this section gives."""
        return {"n_cycles": self.n_cycles, "dt": self.dt, "reset_mechanism": self.reset_mechanism,
                "strict": self.strict}


@dataclass(frozen=True)
class ImplementSection:
    """Place and route on an FPGA part (docs/implementation.md): target, clock, speed grade, package,
    optional fixed-width stream top."""

    target: str = "ecp5-85k"
    clock_mhz: float = 100.0
    speed: int | None = None
    package: str | None = None
    stream_width: int | None = None


@dataclass(frozen=True)
class FlowSpec:
    """A validated flow spec; ``net`` keeps the user's dict, ``net_spec`` its parsed form."""

    name: str
    dataset: DatasetSection
    net: dict[str, Any]
    net_spec: NetSpec
    train: TrainSection
    optimize: OptimizeSection
    select: SelectSection
    simulate: SimulateSection
    hdl: HdlSection = field(default_factory=HdlSection)
    #: ``dataset.artifact``: sha256 of an .npz uploaded to the store (the gateway's UploadDataset);
    #: then ``dataset.name`` is only a label
    dataset_artifact: str | None = None
    #: ``model``: a given model (NIR) instead of training; the train stage is then skipped
    model: ModelSection | None = None
    #: ``implement``: place and route the design (None: the flow stops at the simulation)
    implement: ImplementSection | None = None

    def to_dict(self) -> dict[str, Any]:
        dataset = asdict(self.dataset)
        if self.dataset_artifact is not None:
            dataset["artifact"] = self.dataset_artifact
        out = {"name": self.name, "dataset": dataset, "net": self.net,
               "train": asdict(self.train), "optimize": {**self.optimize.ranges, "workers": self.optimize.workers,
                                                    **self.optimize.hardware},
               "select": {k: v for k, v in asdict(self.select).items() if v is not None},
               "hdl": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.hdl).items()
                       if v is not None},
               "simulate": asdict(self.simulate)}
        if self.model is not None:
            out["model"] = {k: v for k, v in asdict(self.model).items() if v is not None and v is not False}
        if self.implement is not None:
            out["implement"] = {k: v for k, v in asdict(self.implement).items() if v is not None}
        return out

    def digest(self, *sections: str) -> str:
        """A sha256 of the named sections (all when none): the cache key of a stage's inputs."""
        data = self.to_dict()
        picked = {k: data[k] for k in (sections or SECTIONS) if k != "name" and k in data}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def _section(raw: Mapping[str, Any], name: str, cls: type, types: dict[str, tuple[type, ...]]) -> Any:
    body = raw.get(name)
    body = {} if body is None else body  # an empty list or string is not an empty section
    if not isinstance(body, Mapping):
        raise SpecError(name, f"must be a mapping, got {type(body).__name__}")
    values = {}
    for key, value in body.items():
        if key not in types:
            raise SpecError(f"{name}.{key}", f"unknown key; allowed: {', '.join(types)}")
        allowed = types[key]
        if isinstance(value, bool) and bool not in allowed:
            raise SpecError(f"{name}.{key}", f"must be {' or '.join(t.__name__ for t in allowed)}, got {value!r}")
        if not isinstance(value, allowed):
            raise SpecError(f"{name}.{key}", f"must be {' or '.join(t.__name__ for t in allowed)}, got {value!r}")
        values[key] = value
    return cls(**values)


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _positive(value: Any, key: str) -> None:
    if value <= 0:
        raise SpecError(key, f"must be > 0, got {value}")


def _check_feasible(config: FixedPointConfig, net_spec: NetSpec) -> None:
    """Reject explicit bit-widths that no training can make feasible (before anything runs)."""
    problem = config.structural_problem()
    if problem:
        raise SpecError("select.optim_params", f"infeasible: {problem}")
    for i, layer in enumerate(net_spec.layers):
        if layer.learn_threshold:  # known only after training
            continue
        try:
            config.quantize_threshold(layer.threshold, where=f"net.layer_{i}.threshold")
        except InfeasibleConfigError as exc:
            raise SpecError("select.optim_params", f"infeasible: {exc}") from None


def _model_section(raw: Mapping[str, Any]) -> ModelSection | None:
    """The ``model`` section: exactly one of ``nir`` (a path) and ``artifact`` (an uploaded file's sha256)."""
    if raw.get("model") is None:
        return None
    model = _section(raw, "model", ModelSection, {
        "nir": (str,), "artifact": (str,), "n_cycles": (int,), "dt": (int, float), "reset_mechanism": (str,),
        "strict": (bool,)})
    if (model.nir is None) == (model.artifact is None):
        raise SpecError("model", "give exactly one of model.nir (a NIR file) and model.artifact (its sha256 "
                                 "after an upload)")
    if model.artifact is not None and not _is_sha256(model.artifact):
        raise SpecError("model.artifact", f"must be the sha256 (64 lowercase hex digits) of an uploaded NIR file, "
                                          f"got {model.artifact!r}")
    if model.n_cycles is not None:
        _positive(model.n_cycles, "model.n_cycles")
    if model.dt is not None:
        _positive(model.dt, "model.dt")
    if model.reset_mechanism is not None and model.reset_mechanism not in ("subtract", "zero", "none"):
        raise SpecError("model.reset_mechanism", f"must be one of subtract, zero, none; got {model.reset_mechanism!r}")
    return model


def _with_nir_net(raw: Any, folder: Path) -> Any:
    """A spec document whose ``model.nir`` file (relative to ``folder``) also gives its ``net`` section."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model"), Mapping):
        return raw
    nir_path = raw["model"].get("nir")
    if not isinstance(nir_path, str):
        return raw
    if "net" in raw:
        raise SpecError("net", "give either net (to train) or model.nir (a trained net), not both: the NIR "
                               "file gives the network")
    from spiker import nir as spiker_nir

    path = Path(nir_path) if Path(nir_path).is_absolute() else (folder / nir_path).resolve()
    model = _model_section({"model": {**raw["model"], "nir": str(path)}})
    try:
        snn = spiker_nir.load(path, **model.load_args())
    except FileNotFoundError:
        raise SpecError("model.nir", f"file not found: {path}") from None
    except SpecError as exc:
        raise SpecError(f"model.nir: {exc.key}", exc.message) from None
    return {**raw, "model": {**raw["model"], "nir": str(path)}, "net": snn.spec.to_dict()}


def parse_dataset_section(raw: Any, uploaded: bool = False) -> DatasetSection:
    """Validate a spec's ``dataset`` section alone (defaults filled in); ``uploaded``: its data is an
    uploaded artifact, so ``name`` need not be a dataset or ``.npz`` path. Raises
    :class:`~spiker.errors.SpecError` naming the ``dataset.<key>``."""
    dataset = _section({"dataset": raw}, "dataset", DatasetSection, {
        "name": (str,), "encoding": (str,), "batch_size": (int,), "seed": (int,),
        "test_fraction": (int, float), "threshold": (int, float)})
    if dataset.encoding not in ENCODINGS:
        raise SpecError("dataset.encoding", f"must be one of {', '.join(ENCODINGS)}, got {dataset.encoding!r}")
    if not uploaded and dataset.name not in ("digits", "mnist1d") and not dataset.name.endswith(".npz"):
        raise SpecError("dataset.name", f"must be digits, mnist1d or a path to an .npz file, got {dataset.name!r}")
    _positive(dataset.batch_size, "dataset.batch_size")
    if not 0 < dataset.test_fraction < 1:
        raise SpecError("dataset.test_fraction", f"must be in (0, 1), got {dataset.test_fraction}")
    return dataset


def parse_flow_spec(raw: Any, default_name: str = "flow") -> FlowSpec:
    """Validate a flow spec mapping."""
    if not isinstance(raw, Mapping):
        raise SpecError("spec", f"must be a mapping with sections {', '.join(SECTIONS)}")
    for key in raw:
        if key not in SECTIONS:
            raise SpecError(str(key), f"unknown section; allowed: {', '.join(SECTIONS)}")
    name = raw.get("name", default_name)
    if (not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH or not name.strip(".")
            or not all(c.isalnum() or c in "-_." for c in name)):
        shown = f"{name[:40]!r}... ({len(name)} characters)" if isinstance(name, str) and len(name) > 60 else repr(name)
        raise SpecError("name", f"must be a name of 1 to {MAX_NAME_LENGTH} letters, digits, '-', '_' or '.' "
                                f"(not only dots), got {shown}")
    dataset_raw, artifact = raw.get("dataset"), None
    if isinstance(dataset_raw, Mapping) and "artifact" in dataset_raw:
        dataset_raw = dict(dataset_raw)
        artifact = dataset_raw.pop("artifact")
        if artifact is not None and (not isinstance(artifact, str) or not _is_sha256(artifact)):
            raise SpecError("dataset.artifact", f"must be the sha256 (64 lowercase hex digits) of an uploaded "
                                                f".npz, got {artifact!r}")
    dataset = parse_dataset_section(dataset_raw, uploaded=artifact is not None)
    if "net" not in raw:
        raise SpecError("net", "is required (the NetBuilder's net dict)")
    try:
        net_spec = parse_net_dict(raw["net"])
    except SpecError as exc:
        raise SpecError(f"net.{exc.key}", exc.message) from None
    train = _section(raw, "train", TrainSection, {
        "epochs": (int,), "lr": (int, float), "loss": (str,), "optimizer": (str,), "seed": (int,)})
    _positive(train.epochs, "train.epochs")
    _positive(train.lr, "train.lr")
    if train.loss not in LOSSES:
        raise SpecError("train.loss", f"must be one of {', '.join(LOSSES)}, got {train.loss!r}")
    if train.optimizer not in OPTIMIZERS:
        raise SpecError("train.optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {train.optimizer!r}")
    if not isinstance(raw.get("optimize") if raw.get("optimize") is not None else {}, Mapping):
        raise SpecError("optimize", "must be a mapping of ranges")
    optimize_raw = dict(raw.get("optimize") or {})
    workers = optimize_raw.pop("workers", 1)
    hardware = {k: optimize_raw.pop(k) for k in HARDWARE_KEYS if k in optimize_raw}
    try:
        knobs = parse_hardware(hardware)
    except SpecError as exc:
        raise SpecError(exc.key.replace("hardware", "optimize"), exc.message) from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError("optimize.workers", f"must be a positive integer, got {workers!r}")
    optimize = OptimizeSection(ranges=optimize_raw or OptimizeSection().ranges, workers=workers,
                               events_per_cycle=tuple(dict.fromkeys(e for e, _ in knobs)),
                               neurons_per_cycle=tuple(dict.fromkeys(p for _, p in knobs)))
    try:
        optim_ranges(optimize.ranges)  # validated, never built here (it may be huge)
    except SpecError as exc:
        raise SpecError(exc.key.replace("optim_config", "optimize"), exc.message) from None
    select = _section(raw, "select", SelectSection, {
        "max_accuracy_drop": (int, float), "optim_params": (dict,), "objective": (str,),
        **{k: (int, float) for k in BUDGETS}})
    if select.objective not in OBJECTIVES:
        raise SpecError("select.objective", f"must be one of {', '.join(OBJECTIVES)}, got {select.objective!r}")
    for key in BUDGETS:
        if getattr(select, key) is not None and getattr(select, key) < 0:
            raise SpecError(f"select.{key}", f"must be >= 0, got {getattr(select, key)}")
    if select.optim_params is not None:
        _check_feasible(FixedPointConfig.from_dict(select.optim_params, where="select.optim_params"), net_spec)
        select = SelectSection(max_accuracy_drop=None, optim_params=dict(select.optim_params),
                               objective=select.objective)
    elif select.max_accuracy_drop is not None and select.max_accuracy_drop < 0:
        raise SpecError("select.max_accuracy_drop", f"must be >= 0, got {select.max_accuracy_drop}")
    hdl = _hdl_section(raw, net_spec)
    simulate = _section(raw, "simulate", SimulateSection, {
        "samples": (int,), "trace": (bool,), "workers": (int,)})
    _positive(simulate.samples, "simulate.samples")
    _positive(simulate.workers, "simulate.workers")
    model = _model_section(raw)
    implement = _implement_section(raw)
    return FlowSpec(name=name, dataset=dataset, net=dict(raw["net"]), net_spec=net_spec, train=train,
                    optimize=optimize, select=select, simulate=simulate, hdl=hdl,
                    dataset_artifact=artifact, model=model, implement=implement)


def _hdl_section(raw: Mapping[str, Any], net_spec: NetSpec) -> HdlSection:
    from spiker.hdl.multiplex import resolve_neurons_per_cycle

    hdl = _section(raw, "hdl", HdlSection, {"resources": (bool, str), "events_per_cycle": (int,),
                                            "neurons_per_cycle": (int, list, dict), "row_register": (bool,),
                                            "testbench": (int,)})
    hdl = replace(hdl, resources=resource_method(hdl.resources, "hdl.resources"))
    if hdl.testbench is not None and hdl.testbench < 1:
        raise SpecError("hdl.testbench", f"must be a number of samples >= 1, got {hdl.testbench}")
    if hdl.events_per_cycle is not None and hdl.events_per_cycle not in (1, 2):
        raise SpecError("hdl.events_per_cycle", f"must be 1 or 2, got {hdl.events_per_cycle}")
    if hdl.neurons_per_cycle is None:
        return hdl
    try:
        units = resolve_neurons_per_cycle([la.n_neurons for la in net_spec.layers], hdl.neurons_per_cycle,
                                          [la.name for la in net_spec.layers])
    except SpecError as exc:
        raise SpecError(f"hdl.{exc.key}", exc.message) from None
    return replace(hdl, neurons_per_cycle=units)


def resource_method(value: bool | str | None, key: str = "resources") -> str | None:
    """The resource estimate method of an ``hdl.resources`` value: ``true``/``"synth"`` -> "synth",
    ``"fast"`` -> "fast", ``false``/None -> None (no estimate)."""
    from spiker.optimize.cost_model import METHODS

    if value is None or value is False:
        return None
    if value is True:
        return "synth"
    if isinstance(value, str) and value in METHODS:
        return value
    raise SpecError(key, f"must be true, false or one of {', '.join(repr(m) for m in METHODS)} "
                         f"(\"fast\": the cost model's estimate, no synthesis), got {value!r}")


def _implement_section(raw: Mapping[str, Any]) -> ImplementSection | None:
    if "implement" not in raw:
        return None
    section = _section(raw, "implement", ImplementSection, {
        "target": (str,), "clock_mhz": (int, float), "speed": (int,), "package": (str,), "stream_width": (int,)})
    _positive(section.clock_mhz, "implement.clock_mhz")
    from spiker.hdl.stream_top import STREAM_WIDTHS
    from spiker.hdl.targets import TargetError, target

    try:
        target(section.target, speed=section.speed, package=section.package)
    except TargetError as exc:
        raise SpecError("implement.target", str(exc)) from None
    if section.stream_width is not None and section.stream_width not in STREAM_WIDTHS:
        raise SpecError("implement.stream_width", f"must be one of {', '.join(map(str, STREAM_WIDTHS))}, "
                                                  f"got {section.stream_width}")
    return ImplementSection(**{**asdict(section), "clock_mhz": float(section.clock_mhz)})


def load_flow_spec(path: str | Path) -> FlowSpec:
    """Read and validate a YAML or JSON flow spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("spec", f"file not found: {path}")
    raw = _with_nir_net(parse_spec_text(path.read_text(), str(path)), path.parent)
    spec = parse_flow_spec(raw, default_name=path.stem)
    if spec.dataset.name.endswith(".npz") and not Path(spec.dataset.name).is_absolute():
        resolved = (path.parent / spec.dataset.name).resolve()
        spec = FlowSpec(**{**spec.__dict__, "dataset": DatasetSection(**{**asdict(spec.dataset),
                                                                          "name": str(resolved)})})
    return spec
