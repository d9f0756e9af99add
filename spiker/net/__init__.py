"""Network description, validation and the trainable model."""

from spiker.net.builder import NetBuilder
from spiker.net.model import NetOutput, SpikingNet
from spiker.net.spec import LayerSpec, LeakSnapWarning, NetSpec, parse_net_dict

__all__ = ["LayerSpec", "LeakSnapWarning", "NetBuilder", "NetOutput", "NetSpec", "SpikingNet", "parse_net_dict"]
