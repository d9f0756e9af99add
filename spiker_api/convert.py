"""Conversions between the proto messages of package ``spiker.v1`` and the library's plain dicts.

Validation of content stays in the library (``parse_net_dict``, ``parse_flow_spec``,
``parse_optim_config``, ``FixedPointConfig``); here only the shape of the messages is checked,
and errors name the request field (:class:`~spiker_api.errors.FieldError`).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spiker.errors import SpecError
from spiker.flow.spec import parse_dataset_section
from spiker.store import ArtifactRef, InvalidKeyError, validate_key
from spiker_api.errors import FieldError, remap_field
from spiker_api.v1 import common_pb2

NEURON_MODELS = {common_pb2.NEURON_MODEL_LIF: "lif", common_pb2.NEURON_MODEL_SYN: "syn",
                 common_pb2.NEURON_MODEL_IF: "if"}
RESET_MECHANISMS = {common_pb2.RESET_MECHANISM_SUBTRACT: "subtract", common_pb2.RESET_MECHANISM_ZERO: "zero",
                    common_pb2.RESET_MECHANISM_NONE: "none"}
BUILTIN_DATASETS = ("digits", "mnist1d")
#: file name an uploaded .npz dataset gets in a job's work folder
NPZ_NAME = "dataset.npz"
#: the library's names of request fields whose proto name differs: a flow spec section or a library
#: argument -> the candidate fields of a request message, first present wins; "" is the nested message
#: itself (the train section's keys, e.g. ``loss``, are SweepSettings' own fields)
LIBRARY_NAMES: dict[str, tuple[str, ...]] = {
    "net": ("net_dict",), "train": ("config", ""), "optim_config": ("ranges",), "optimize": ("ranges",),
    "test_loader": ("dataset",)}


# -- error fields ----------------------------------------------------------------------------

def field_map(message: Any, prefix: str = "") -> dict[str, str]:
    """Library keys -> field paths of the request ``message`` (a message class or descriptor), for
    errors that name a library key: each field of the message under its own name (the proto names
    match the library's), plus :data:`LIBRARY_NAMES`. ``prefix``: the path of a nested message
    (``"settings."``: the OptimizeRequest's SweepSettings)."""
    names = list(getattr(message, "DESCRIPTOR", message).fields_by_name)
    mapping = {name: prefix + name for name in names}
    for key, candidates in LIBRARY_NAMES.items():
        for candidate in candidates:
            if candidate in names or (candidate == "" and prefix):
                mapping.setdefault(key, prefix + candidate if candidate else prefix.rstrip("."))
                break
    return mapping


# -- artifact refs ---------------------------------------------------------------------------

def ref_from_proto(msg: common_pb2.ArtifactRef, field: str) -> ArtifactRef:
    """A store :class:`ArtifactRef` from its message; ``field`` names it in errors."""
    if not msg.key:
        raise FieldError(f"{field}.key", "is required (an ArtifactRef from an earlier stage or upload)")
    try:
        validate_key(msg.key)
    except InvalidKeyError as exc:
        raise FieldError(f"{field}.key", exc.reason) from None
    try:
        return ArtifactRef(bucket=msg.bucket, key=msg.key, sha256=msg.sha256, size=msg.size)
    except ValueError as exc:
        bad = "sha256" if "sha256" in str(exc) else "size"
        raise FieldError(f"{field}.{bad}", str(exc)) from None


def ref_to_proto(ref: ArtifactRef) -> common_pb2.ArtifactRef:
    """The message of a store :class:`ArtifactRef`."""
    return common_pb2.ArtifactRef(bucket=ref.bucket, key=ref.key, sha256=ref.sha256, size=ref.size)


def ref_from_dict(data: dict[str, Any]) -> ArtifactRef:
    """Inverse of ``ArtifactRef.to_dict``."""
    return ArtifactRef.from_dict(data)


# -- net dict --------------------------------------------------------------------------------

def net_dict_from_proto(msg: common_pb2.NetDict) -> dict[str, Any]:
    """The NetBuilder's net dict (``layer_<i>`` entries); unset optional fields are left out."""
    net: dict[str, Any] = {"n_cycles": msg.n_cycles, "n_inputs": msg.n_inputs}
    for i, layer in enumerate(msg.layers):
        entry: dict[str, Any] = {"n_neurons": layer.n_neurons, "learn_alpha": layer.learn_alpha,
                                 "learn_beta": layer.learn_beta, "learn_threshold": layer.learn_threshold}
        if layer.neuron_model != common_pb2.NEURON_MODEL_UNSPECIFIED:
            if layer.neuron_model not in NEURON_MODELS:
                raise FieldError(f"net_dict.layers[{i}].neuron_model", f"unknown value {layer.neuron_model}")
            entry["neuron_model"] = NEURON_MODELS[layer.neuron_model]
        if layer.reset_mechanism != common_pb2.RESET_MECHANISM_UNSPECIFIED:
            if layer.reset_mechanism not in RESET_MECHANISMS:
                raise FieldError(f"net_dict.layers[{i}].reset_mechanism",
                                 f"unknown value {layer.reset_mechanism}")
            entry["reset_mechanism"] = RESET_MECHANISMS[layer.reset_mechanism]
        for name in ("alpha", "beta", "threshold"):
            if layer.HasField(name):
                entry[name] = getattr(layer, name)
        net[f"layer_{i}"] = entry
    return net


def net_dict_to_proto(net: dict[str, Any]) -> common_pb2.NetDict:
    """The message of a net dict (e.g. ``NetSpec.to_dict()``)."""
    models = {v: k for k, v in NEURON_MODELS.items()}
    resets = {v: k for k, v in RESET_MECHANISMS.items()}
    msg = common_pb2.NetDict(n_cycles=net["n_cycles"], n_inputs=net["n_inputs"])
    i = 0
    while f"layer_{i}" in net:
        raw = net[f"layer_{i}"]
        layer = msg.layers.add(neuron_model=models[raw["neuron_model"]], n_neurons=raw["n_neurons"],
                               learn_alpha=bool(raw.get("learn_alpha")),
                               learn_beta=bool(raw.get("learn_beta")),
                               learn_threshold=bool(raw.get("learn_threshold")))
        if raw.get("reset_mechanism"):
            layer.reset_mechanism = resets[raw["reset_mechanism"]]
        for name in ("alpha", "beta", "threshold"):
            if raw.get(name) is not None:
                setattr(layer, name, raw[name])
        i += 1
    return msg


# -- bit-widths ------------------------------------------------------------------------------

def optim_params_from_proto(msg: common_pb2.OptimParams) -> dict[str, int]:
    """``{"weights_bw", "neurons_bw", "fp_dec"}`` (feasibility is the library's to judge)."""
    return {"weights_bw": msg.weights_bw, "neurons_bw": msg.neurons_bw, "fp_dec": msg.fp_dec}


def optim_params_to_proto(params: dict[str, int]) -> common_pb2.OptimParams:
    return common_pb2.OptimParams(**{k: int(params[k]) for k in ("weights_bw", "neurons_bw", "fp_dec")})


def ranges_from_proto(msg: common_pb2.OptimRanges) -> dict[str, dict[str, int]]:
    """The library's ``optim_config``; missing ranges are left out (the library names them)."""
    out = {}
    for key in ("weights_bw", "neurons_bw", "fp_dec"):
        if msg.HasField(key):
            rng = getattr(msg, key)
            out[key] = {"min": rng.min, "max": rng.max}
    return out


# -- hardware knobs -----------------------------------------------------------------------------

def hardware_knobs(request: Any) -> dict[str, Any]:
    """The VhdlGenerator knobs of a GenerateRequest or SimulateRequest (None: the generator's default):
    ``events_per_cycle`` (0: default), repeated ``neurons_per_cycle`` (empty: fully parallel; one entry:
    every layer; else per layer, 0 = parallel) and optional ``row_register`` (unset: default)."""
    events_per_cycle = request.events_per_cycle
    if events_per_cycle not in (0, 1, 2):
        raise FieldError("events_per_cycle", f"must be 1 or 2 (0: default), got {events_per_cycle}")
    units = list(request.neurons_per_cycle)
    if any(p < 0 for p in units):
        raise FieldError("neurons_per_cycle", f"entries must be >= 0 (0: fully parallel), got {units}")
    npc = (units[0] or None) if len(units) == 1 else [p or None for p in units] if units else None
    row_register = request.row_register if request.HasField("row_register") else None
    return {"events_per_cycle": events_per_cycle or None, "neurons_per_cycle": npc, "row_register": row_register}


# -- datasets --------------------------------------------------------------------------------

def dataset_from_proto(msg: common_pb2.DatasetSpec, field: str = "dataset",
                       ) -> tuple[dict[str, Any], ArtifactRef | None]:
    """The flow spec's ``dataset`` section (all fields, library defaults filled in) and the ref
    of an uploaded ``.npz`` (then ``name`` is :data:`NPZ_NAME`, resolved in the job's folder)."""
    source = msg.WhichOneof("source")
    if source is None:
        raise FieldError(field, "set builtin ('digits' or 'mnist1d') or npz (an uploaded .npz ArtifactRef)")
    npz = None
    if source == "builtin":
        if msg.builtin not in BUILTIN_DATASETS:
            raise FieldError(f"{field}.builtin", f"must be one of {', '.join(BUILTIN_DATASETS)}, got "
                                                 f"{msg.builtin!r} (upload other data as npz)")
        name = msg.builtin
    else:
        npz = ref_from_proto(msg.npz, f"{field}.npz")
        name = NPZ_NAME
    section: dict[str, Any] = {"name": name}
    for key in ("encoding", "batch_size", "seed", "test_fraction", "threshold"):
        if msg.HasField(key):
            section[key] = getattr(msg, key)
    try:
        dataset = parse_dataset_section(section)
    except SpecError as exc:
        raise FieldError(remap_field(exc.key, {"dataset": field}), exc.message, "SPEC_ERROR") from None
    return asdict(dataset), npz


def dataset_in_workdir(dataset: dict[str, Any] | None, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """The job's ``dataset`` section with an uploaded ``.npz`` name resolved in its work folder."""
    ds = dict(dataset or {})
    if str(ds.get("name", "")).endswith(".npz"):
        ds["name"] = str(Path(workdir) / ds["name"])
    return ds
