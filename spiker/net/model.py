"""The trainable spiking network: fully connected layers of snnTorch neurons."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import snntorch as snn
import torch
from torch import nn

from spiker.data.checks import looks_batch_first
from spiker.errors import DataError, SpecError
from spiker.net import leaky
from spiker.net.spec import NetSpec, leak_from_shift, realise_leak, user_stacklevel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class NetOutput:
    """Per-step records of the output layer, time-first ``[T, B, n_outputs]``."""

    spikes: torch.Tensor
    membrane: torch.Tensor

    @property
    def counts(self) -> torch.Tensor:
        """Output spike counts over all steps, ``[B, n_outputs]``."""
        return self.spikes.sum(0)


def _make_neuron(layer) -> nn.Module:
    common = dict(threshold=layer.threshold, learn_threshold=layer.learn_threshold,
                  reset_mechanism=layer.reset_mechanism)
    if layer.neuron_model == "syn":
        neuron = snn.Synaptic(alpha=layer.alpha, beta=layer.beta, learn_alpha=layer.learn_alpha,
                              learn_beta=layer.learn_beta, **common)
    else:  # lif, if (beta = 1)
        neuron = snn.Leaky(beta=layer.beta, learn_beta=layer.learn_beta, **common)
    # snnTorch keeps every neuron ever built in a global list; ours are owned by the net only.
    if neuron in snn.SpikingNeuron.instances:
        snn.SpikingNeuron.instances.remove(neuron)
    return neuron


class SpikingNet(nn.Module):
    """A feed-forward SNN built from a :class:`~spiker.net.spec.NetSpec`.

    Input layout is time-first: ``x`` of shape ``[T, B, n_inputs]`` (spikes as 0/1
    floats). Batch-first input is not accepted, because ``[B, T, n]`` cannot be told
    apart from ``[T, B, n]``; transpose it first. Layers have no bias (the accelerator
    has none). ``forward`` returns a :class:`NetOutput`; ``record=True`` also returns
    every layer's spikes and membranes.
    """

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.fcs = nn.ModuleList(
            nn.Linear(layer.n_inputs, layer.n_neurons, bias=False) for layer in spec.layers)
        self.neurons = nn.ModuleList(_make_neuron(layer) for layer in spec.layers)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise DataError(f"input must be a torch.Tensor [T, B, n_inputs], got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.spec.n_inputs:
            raise DataError(
                f"input must have shape [T, B, {self.spec.n_inputs}] (time-first), got {list(x.shape)}")
        if looks_batch_first(x.shape, self.spec.n_cycles):
            warnings.warn(f"input {list(x.shape)} looks batch-first [B, T, n] for a net with n_cycles="
                          f"{self.spec.n_cycles}; it runs as {x.shape[0]} time steps (spiker is time-first "
                          "[T, B, n]: transpose it with x.transpose(0, 1))",
                          stacklevel=user_stacklevel(("spiker", "torch")))
        if not x.is_floating_point():
            x = x.float()
        return x

    def layer_records(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Run the net and return, per layer, ``spikes`` and ``membrane`` (and ``synapse``) ``[T, B, N]``.

        Layers are evaluated one after the other over all steps: a layer's input
        currents for every step come from one matrix product, then the neuron
        recurrence runs over time. This equals the step-by-step order because no
        layer feeds back.
        """
        x = self._check_input(x)
        steps, batch = x.shape[0], x.shape[1]
        records = []
        spikes_in = x
        for fc, neuron in zip(self.fcs, self.neurons):
            current = fc(spikes_in.reshape(steps * batch, -1)).reshape(steps, batch, -1)
            if leaky.supports(neuron):  # all steps in one autograd node, equal to the loop below
                spikes, membrane = leaky.leaky_layer(neuron, current)
                records.append({"spikes": spikes, "membrane": membrane})
                spikes_in = spikes
                continue
            # unbind, not current[t]: the backward of T selects adds T full-size [T, B, N] gradients
            # (T^2 work: 1.6x slower training at 73 steps than the step-by-step snnTorch loop)
            currents = current.unbind(0)
            spk_rec, mem_rec, syn_rec = [], [], []
            if isinstance(neuron, snn.Synaptic):
                syn = torch.zeros_like(current[0])
                mem = torch.zeros_like(current[0])
                for cur in currents:
                    spk, syn, mem = neuron(cur, syn, mem)
                    spk_rec.append(spk)
                    mem_rec.append(mem)
                    syn_rec.append(syn)
            else:
                mem = torch.zeros_like(current[0])
                for cur in currents:
                    spk, mem = neuron(cur, mem)
                    spk_rec.append(spk)
                    mem_rec.append(mem)
            record = {"spikes": torch.stack(spk_rec), "membrane": torch.stack(mem_rec)}
            if syn_rec:
                record["synapse"] = torch.stack(syn_rec)
            records.append(record)
            spikes_in = record["spikes"]
        return records

    def forward(self, x: torch.Tensor) -> NetOutput:
        last = self.layer_records(x)[-1]
        return NetOutput(spikes=last["spikes"], membrane=last["membrane"])

    # -- trained parameters as the hardware sees them ---------------------------------
    def layer_threshold(self, index: int) -> float:
        """The (possibly learned) threshold of a layer."""
        return float(self.neurons[index].threshold.detach().reshape(-1)[0])

    def snap_learned_leaks(self, strict: bool = False) -> None:
        """Snap learned beta/alpha to realisable ``1 - 2**-k`` values and record them in the spec."""
        for i, layer in enumerate(self.spec.layers):
            neuron = self.neurons[i]
            changes: dict[str, Any] = {}
            for flag, attr, field in (("learn_beta", "beta", "beta_shift"),
                                      ("learn_alpha", "alpha", "alpha_shift")):
                if getattr(layer, flag):
                    learned = float(getattr(neuron, attr).detach().clamp(0, 1).reshape(-1)[0])
                    shift = realise_leak(min(learned, 1 - 2.0 ** -20), f"{layer.name}.{attr}", strict)
                    log.info("%s: learned %s=%.6f snapped to %s (k=%d)", layer.name, attr, learned,
                             leak_from_shift(shift), shift)
                    with torch.no_grad():
                        getattr(neuron, attr).fill_(leak_from_shift(shift))
                    changes[field] = shift
            if changes:
                self.spec = self.spec.with_layer(i, **changes)

    # -- persistence ----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save weights and spec to one file; :meth:`load` restores it without the net dict."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": FORMAT_VERSION, "spec": self.spec.as_record(),
                    "state": self.state_dict()}, path)
        return path

    def to_nir(self, optim_params: Any = None):
        """This net as a ``nir.NIRGraph`` (quantized integers with ``optim_params``); see docs/nir.md."""
        from spiker import nir as spiker_nir

        return spiker_nir.to_nir(self, optim_params)

    @classmethod
    def load(cls, path: str | Path) -> SpikingNet:
        """A net saved by :meth:`save`, or a NIR file (``spiker.nir.load`` with its defaults)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved model at {path}")
        from spiker import nir as spiker_nir

        if spiker_nir.is_nir_file(path):
            return spiker_nir.load(path)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT_VERSION:
            raise SpecError(str(path), "not a spiker model file (or a newer format)")
        net = cls(NetSpec.from_record(blob["spec"]))
        net.load_state_dict(blob["state"])
        return net
