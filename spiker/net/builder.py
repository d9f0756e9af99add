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
        if seed is None:
            net = SpikingNet(self.spec)
        else:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                net = SpikingNet(self.spec)
        log.info("built SNN %s (%s)", "-".join(map(str, self.spec.sizes)),
                 ", ".join(layer.neuron_model for layer in self.spec.layers))
        return net
