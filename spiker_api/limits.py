"""Size limits every entry point enforces (the gateway on a spec, a stage service on a request).

One definition, so a direct call to a stage service cannot do what the gateway refuses (a
100,000-epoch training, a 10^6-sample simulation). A limit that is exceeded raises
:class:`~spiker_api.errors.FieldError` naming the request field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from spiker.net.spec import NetSpec
from spiker_api.errors import FieldError, remap_field
from spiker_api.v1 import common_pb2

#: the largest gRPC message a stage service takes and sends unless told otherwise
#: (``spiker serve --max-message-bytes``); a caller's channel must take replies of this size
SERVICE_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SizeLimits:
    """Largest network and job a service takes (``SPIKER_MAX_<FIELD>`` overrides, e.g. SPIKER_MAX_EPOCHS)."""

    max_neurons: int = 4096
    max_weights: int = 1_000_000
    max_epochs: int = 1000
    max_samples: int = 100_000
    max_workers: int = 16
    max_cycles: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SizeLimits:
        env = os.environ if env is None else env
        values: dict[str, int | float] = {}
        for f in fields(cls):  # a subclass's fields too (the gateway's Limits)
            raw = env.get(f"SPIKER_{f.name.upper()}", "").strip()
            if raw:
                number = float if f.type in ("float", float) else int
                try:
                    values[f.name] = number(raw)
                except ValueError:
                    raise ValueError(f"SPIKER_{f.name.upper()} must be a number ({number.__name__}), "
                                     f"got {raw!r}") from None
        return cls(**values)


def check_net(net: NetSpec | common_pb2.NetDict, limits: Any, field: str = "net") -> None:
    """Network size against ``limits`` (any object with the SizeLimits fields).

    ``net`` is a parsed spec or a request's ``NetDict`` as it arrived: only its sizes are read
    (``n_inputs``, ``n_cycles``, each layer's ``n_neurons``), so a request is not parsed for this.
    """
    if net.n_inputs > limits.max_neurons:
        raise FieldError(f"{field}.n_inputs", f"at most {limits.max_neurons} on this server, got {net.n_inputs}")
    if net.n_cycles > limits.max_cycles:
        raise FieldError(f"{field}.n_cycles", f"at most {limits.max_cycles} on this server, got {net.n_cycles}")
    neurons, weights, fan_in = 0, 0, net.n_inputs
    for i, layer in enumerate(net.layers):
        neurons += layer.n_neurons
        weights += fan_in * layer.n_neurons
        fan_in = layer.n_neurons
        if neurons > limits.max_neurons:
            raise FieldError(f"{field}.layer_{i}.n_neurons", f"the network exceeds this server's limit of "
                                                            f"{limits.max_neurons} neurons ({neurons} so far)")
        if weights > limits.max_weights:
            raise FieldError(f"{field}.layer_{i}.n_neurons", f"the network exceeds this server's limit of "
                                                            f"{limits.max_weights} weights ({weights} so far)")


def check_at_most(field: str, value: int, limit: int) -> None:
    if value > limit:
        raise FieldError(field, f"at most {limit} on this server, got {value}")


def check_request(request: Any, limits: SizeLimits) -> None:
    """The limits of one stage request (TrainRequest, OptimizeRequest, GenerateRequest, SimulateRequest ...).

    Fields are found by name, so every request that carries a net dict, epochs, samples or
    workers is covered.
    """
    for name in ("net_dict", "settings.net_dict"):
        msg = request
        for part in name.split("."):
            if msg is None or not _has(msg, part):
                msg = None
                break
            msg = getattr(msg, part)
        if msg is not None:  # its content is the servicer's to check (one parse), naming the field
            try:
                check_net(msg, limits, name)
            except FieldError as exc:  # the message's field: net_dict.layers[0].n_neurons
                raise FieldError(remap_field(exc.key, {}), exc.message, exc.reason) from None
    config = getattr(request, "config", None)
    if config is not None and _has(config, "epochs"):
        check_at_most("config.epochs", int(config.epochs), limits.max_epochs)
    for name, limit in (("n_samples", limits.max_samples), ("workers", limits.max_workers),
                        ("shard_count", limits.max_workers)):
        if _has(request, name):
            check_at_most(name, int(getattr(request, name)), limit)


def _has(msg: Any, name: str) -> bool:
    """Whether the protobuf message ``msg`` has a field ``name`` that is set (or a scalar of that name)."""
    descriptor = getattr(msg, "DESCRIPTOR", None)
    if descriptor is None or name not in descriptor.fields_by_name:
        return False
    fd = descriptor.fields_by_name[name]
    if fd.message_type is not None or fd.has_presence:
        return msg.HasField(name)
    return True
