"""NetBuilder: from the seed README's net dict to a trainable snnTorch network."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from spiker.net.model import SpikingNet
from spiker.net.spec import NetSpec, parse_net_dict

log = logging.getLogger(__name__)


class NetBuilder:
    """Validate a net dict and build the :class:`SpikingNet` it describes.

    ``strict=True`` rejects leak factors the hardware cannot realise instead of
    snapping them to the nearest ``1 - 2**-k``.
    """

    def __init__(self, net_dict: Mapping[str, Any], strict: bool = False) -> None:
        self.net_dict = net_dict
        self.spec: NetSpec = parse_net_dict(net_dict, strict=strict)

    def build(self, seed: int | None = None) -> SpikingNet:
        """A fresh, untrained network; ``seed`` fixes its initial weights."""
        return build_net(self.spec, seed)


def build_net(spec: NetSpec, seed: int | None = None) -> SpikingNet:
    """A fresh, untrained network of an already parsed ``spec``; ``seed`` fixes its initial weights."""
    if seed is None:
        net = SpikingNet(spec)
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = SpikingNet(spec)
    log.info("built SNN %s (%s)", "-".join(map(str, spec.sizes)),
             ", ".join(layer.neuron_model for layer in spec.layers))
    return net
