"""The network description: parse and validate a net dict into a typed spec.

A net dict is the seed README's format::

    {"n_cycles": 73, "n_inputs": 40,
     "layer_0": {"neuron_model": "lif", "n_neurons": 128, "beta": 0.9375, ...}, ...}

Every check names the offending key. Leak factors (``beta``, ``alpha``) must be
realisable by the hardware as ``v - (v >> k)``, i.e. ``1 - 2**-k``; other values
are snapped to the nearest realisable one (with a warning) or rejected in strict mode.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from spiker.errors import SpecError

log = logging.getLogger(__name__)

NEURON_MODELS = ("lif", "syn", "if")
RESET_MECHANISMS = ("subtract", "zero", "none")

#: Documented size limits (one layer of the accelerator is a single ROM word per input).
MAX_INPUTS = 4096
MAX_NEURONS = 4096
MAX_LAYERS = 16
MAX_CYCLES = 100_000
#: Largest leak shift k (beta = 1 - 2**-k). k = 0 is beta = 0 (no memory).
MAX_SHIFT = 16

_TOP_KEYS = ("n_cycles", "n_inputs")
_LAYER_KEYS = (
    "neuron_model",
    "n_neurons",
    "alpha",
    "learn_alpha",
    "beta",
    "learn_beta",
    "threshold",
    "learn_threshold",
    "reset_mechanism",
)
_LAYER_RE = re.compile(r"^layer_(\d+)$")


def user_stacklevel(skip: tuple[str, ...] = ("spiker",)) -> int:
    """The ``stacklevel`` for ``warnings.warn`` that points at the first caller outside the
    ``skip`` packages (spiker; torch too for a warning from a module's forward)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in skip:
        frame, level = frame.f_back, level + 1
    return level


class LeakSnapWarning(UserWarning):
    """A leak factor was snapped to the nearest ``1 - 2**-k`` the hardware can realise."""


def leak_from_shift(shift: int) -> float:
    """The decay factor ``1 - 2**-shift`` realised by ``v - (v >> shift)``."""
    return 1.0 - 2.0 ** (-shift)


def shift_for_leak(value: float) -> int:
    """The shift ``k`` whose ``1 - 2**-k`` is nearest to ``value`` (ties go to the larger k)."""
    best = min(range(MAX_SHIFT + 1), key=lambda k: (abs(leak_from_shift(k) - value), -k))
    return best


@dataclass(frozen=True)
class LayerSpec:
    """One fully connected layer of spiking neurons, as the hardware realises it."""

    index: int
    neuron_model: str
    n_inputs: int
    n_neurons: int
    threshold: float
    reset_mechanism: str
    beta_shift: int | None  # None: no leak (``if``)
    alpha_shift: int | None  # only ``syn``
    learn_beta: bool = False
    learn_alpha: bool = False
    learn_threshold: bool = False

    @property
    def beta(self) -> float:
        """Membrane decay factor (1.0 for ``if``)."""
        return 1.0 if self.beta_shift is None else leak_from_shift(self.beta_shift)

    @property
    def alpha(self) -> float | None:
        """Synaptic decay factor (``syn`` only)."""
        return None if self.alpha_shift is None else leak_from_shift(self.alpha_shift)

    @property
    def name(self) -> str:
        return f"layer_{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """The layer in net-dict form, with the realised (snapped) leak values."""
        return {
            "neuron_model": self.neuron_model,
            "n_neurons": self.n_neurons,
            "alpha": self.alpha,
            "learn_alpha": self.learn_alpha,
            "beta": None if self.neuron_model == "if" else self.beta,
            "learn_beta": self.learn_beta,
            "threshold": self.threshold,
            "learn_threshold": self.learn_threshold,
            "reset_mechanism": self.reset_mechanism,
        }


@dataclass(frozen=True)
class NetSpec:
    """A validated network: inputs, time steps and layers in order."""

    n_cycles: int
    n_inputs: int
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_neurons

    @property
    def sizes(self) -> list[int]:
        """``[n_inputs, n_neurons of layer_0, ...]``."""
        return [self.n_inputs] + [layer.n_neurons for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """The spec in the seed README's net-dict form (realised leak values)."""
        out: dict[str, Any] = {"n_cycles": self.n_cycles, "n_inputs": self.n_inputs}
        for layer in self.layers:
            out[layer.name] = layer.to_dict()
        return out

    def with_layer(self, index: int, **changes: Any) -> NetSpec:
        """A copy with one layer's fields replaced."""
        layers = list(self.layers)
        layers[index] = replace(layers[index], **changes)
        return replace(self, layers=tuple(layers))

    def as_record(self) -> dict[str, Any]:
        """Exact field form, for saving next to a model."""
        return {"n_cycles": self.n_cycles, "n_inputs": self.n_inputs,
                "layers": [asdict(layer) for layer in self.layers]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NetSpec:
        return cls(n_cycles=int(record["n_cycles"]), n_inputs=int(record["n_inputs"]),
                   layers=tuple(LayerSpec(**layer) for layer in record["layers"]))


def _int(value: Any, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(key, f"must be an integer, got {type(value).__name__} {value!r}")
    if value < lo:
        raise SpecError(key, f"must be >= {lo}, got {value}")
    if value > hi:
        raise SpecError(key, f"must be <= {hi} (documented limit), got {value}")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, f"must be true or false, got {type(value).__name__} {value!r}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(key, f"must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(key, f"must be finite, got {value}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(key, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def realise_leak(value: float, key: str, strict: bool) -> int:
    """The hardware shift for a decay factor, snapping (with a warning) or rejecting in strict mode."""
    if not 0.0 <= value < 1.0:
        hint = " (beta = 1 is no leak: use neuron_model 'if')" if value == 1.0 else ""
        raise SpecError(key, f"must be in [0, 1), got {value}{hint}")
    shift = shift_for_leak(value)
    realised = leak_from_shift(shift)
    if realised != value:
        if strict:
            raise SpecError(
                key,
                f"{value} is not realisable as v - (v >> k) (needs 1 - 2^-k); "
                f"nearest is {realised} (k={shift})",
            )
        message = (f"{key}={value} is not realisable in hardware; snapped to {realised} (v - (v >> {shift})); "
                   "use a beta of 1 - 2^-k or strict=True to reject it")
        log.warning("%s", message)
        warnings.warn(message, LeakSnapWarning, stacklevel=user_stacklevel())
    return shift


def _parse_layer(index: int, raw: Any, n_inputs: int, strict: bool) -> LayerSpec:
    name = f"layer_{index}"
    if not isinstance(raw, Mapping):
        raise SpecError(name, f"must be a dict of layer settings, got {type(raw).__name__}")
    for key in raw:
        if key not in _LAYER_KEYS:
            raise SpecError(f"{name}.{key}", f"unknown key; allowed: {', '.join(_LAYER_KEYS)}")
    for key in ("neuron_model", "n_neurons"):
        if key not in raw:
            raise SpecError(f"{name}.{key}", "is required")
    model = _choice(raw["neuron_model"], f"{name}.neuron_model", NEURON_MODELS)
    n_neurons = _int(raw["n_neurons"], f"{name}.n_neurons", 1, MAX_NEURONS)
    reset = _choice(raw.get("reset_mechanism", "subtract"), f"{name}.reset_mechanism", RESET_MECHANISMS)
    threshold = _number(raw.get("threshold", 1.0), f"{name}.threshold")
    if threshold <= 0:
        raise SpecError(f"{name}.threshold", f"must be > 0, got {threshold}")
    learn = {k: _bool(raw.get(k, False), f"{name}.{k}")
             for k in ("learn_alpha", "learn_beta", "learn_threshold")}

    beta, alpha = raw.get("beta"), raw.get("alpha")
    if model == "if":
        if beta is not None and _number(beta, f"{name}.beta") != 1.0:
            raise SpecError(f"{name}.beta", f"'if' neurons have no leak (beta = 1); got {beta}")
        if learn["learn_beta"]:
            raise SpecError(f"{name}.learn_beta", "'if' neurons have no leak to learn")
        beta_shift = None
    else:
        if beta is None:
            raise SpecError(f"{name}.beta", f"is required for '{model}' neurons")
        beta_shift = realise_leak(_number(beta, f"{name}.beta"), f"{name}.beta", strict)
    if model == "syn":
        if alpha is None:
            raise SpecError(f"{name}.alpha", "is required for 'syn' neurons")
        alpha_shift = realise_leak(_number(alpha, f"{name}.alpha"), f"{name}.alpha", strict)
    else:
        if alpha is not None:
            raise SpecError(f"{name}.alpha", f"applies only to 'syn' neurons, not '{model}'")
        if learn["learn_alpha"]:
            raise SpecError(f"{name}.learn_alpha", f"applies only to 'syn' neurons, not '{model}'")
        alpha_shift = None
    return LayerSpec(index=index, neuron_model=model, n_inputs=n_inputs, n_neurons=n_neurons,
                     threshold=threshold, reset_mechanism=reset, beta_shift=beta_shift,
                     alpha_shift=alpha_shift, **learn)


def parse_net_dict(net_dict: Any, strict: bool = False) -> NetSpec:
    """Validate a seed-format net dict and return its :class:`NetSpec`.

    Raises :class:`~spiker.errors.SpecError` naming the offending key.
    """
    if not isinstance(net_dict, Mapping):
        raise SpecError("net", f"must be a dict, got {type(net_dict).__name__}")
    layer_indices: list[int] = []
    for key in net_dict:
        if not isinstance(key, str):
            raise SpecError(str(key), "keys must be strings")
        match = _LAYER_RE.match(key)
        if match:
            layer_indices.append(int(match.group(1)))
        elif key not in _TOP_KEYS:
            raise SpecError(key, "unknown key; allowed: n_cycles, n_inputs, layer_0, layer_1, ...")
    for key in _TOP_KEYS:
        if key not in net_dict:
            raise SpecError(key, "is required")
    n_cycles = _int(net_dict["n_cycles"], "n_cycles", 1, MAX_CYCLES)
    n_inputs = _int(net_dict["n_inputs"], "n_inputs", 1, MAX_INPUTS)
    if not layer_indices:
        raise SpecError("layer_0", "is required: a network needs at least one layer")
    layer_indices.sort()
    if len(layer_indices) > MAX_LAYERS:
        raise SpecError(f"layer_{layer_indices[-1]}", f"at most {MAX_LAYERS} layers are supported")
    for expected, got in enumerate(layer_indices):
        if got != expected:
            raise SpecError(f"layer_{expected}", f"is missing: layers must be numbered 0, 1, 2, ... "
                            f"without gaps (found {', '.join(f'layer_{i}' for i in layer_indices)})")
    layers = []
    fan_in = n_inputs
    for index in layer_indices:
        layer = _parse_layer(index, net_dict[f"layer_{index}"], fan_in, strict)
        layers.append(layer)
        fan_in = layer.n_neurons
    return NetSpec(n_cycles=n_cycles, n_inputs=n_inputs, layers=tuple(layers))
