"""The golden model: the one definition of the quantized network's arithmetic.

The Optimizer scores configs with it, the VHDL generator takes its integers, and
the simulator checks the RTL against its traces. The normative text is
docs/fixed-point.md; this module implements exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from spiker import readout
from spiker.data.checks import check_spikes
from spiker.errors import DataError, InfeasibleConfigError
from spiker.golden.fixed_point import FixedPointConfig, accumulator_bits
from spiker.net.model import SpikingNet
from spiker.net.spec import LayerSpec, NetSpec

#: A float32 product of 0/1 spikes and integer weights is exact below this magnitude.
FLOAT32_EXACT = 1 << 24


@dataclass(frozen=True)
class QuantizedLayer:
    """A layer's integers: ``weights[neuron, input]`` and the threshold, in LSBs of 2**-fp_dec."""

    spec: LayerSpec
    weights: np.ndarray  # int64 [n_neurons, n_inputs]
    threshold: int
    acc_bits: int

    @property
    def n_inputs(self) -> int:
        return self.spec.n_inputs

    @property
    def n_neurons(self) -> int:
        return self.spec.n_neurons


@dataclass
class LayerTrace:
    """Per-step record of one layer for every sample: arrays ``[T, B, N]``."""

    input_spikes: np.ndarray
    membrane: np.ndarray
    spikes: np.ndarray
    synapse: np.ndarray | None = None


@dataclass
class GoldenResult:
    """Output of a batch: counts ``[B, C]``, predictions ``[B]``, output spikes ``[T, B, C]``."""

    counts: np.ndarray
    predictions: np.ndarray
    output_spikes: np.ndarray
    saturated_updates: int
    total_updates: int
    traces: list[LayerTrace] | None = None
    #: present input spikes of each layer per step and sample, ``[L, T, B]`` (the event-driven
    #: hardware's work: spiker.hdl.sim.event_cycles)
    activity: np.ndarray | None = None

    @property
    def saturation_fraction(self) -> float:
        return self.saturated_updates / self.total_updates if self.total_updates else 0.0


class IntegerArithmetic:
    """``v - (v >> k)`` leaks and saturation to ``neurons_bw`` bits (the hardware)."""

    def __init__(self, config: FixedPointConfig) -> None:
        self.lo, self.hi = config.membrane_min, config.membrane_max
        self.saturated = 0

    @staticmethod
    def leak(v: torch.Tensor, shift: int | None, factor: float) -> torch.Tensor:
        return v if shift is None else v - (v >> shift)

    def saturate(self, v: torch.Tensor) -> torch.Tensor:
        clipped = v.clamp(self.lo, self.hi)
        self.saturated += int((clipped != v).sum())
        return clipped


class _FloatArithmetic:
    """snnTorch's own float update: ``beta * v`` and no saturation (quantization removed)."""

    saturated = 0

    @staticmethod
    def leak(v: torch.Tensor, shift: int | None, factor: float) -> torch.Tensor:
        return factor * v

    @staticmethod
    def saturate(v: torch.Tensor) -> torch.Tensor:
        return v


def layer_dynamics(spec: LayerSpec, currents: torch.Tensor, threshold, arith, beta=None, alpha=None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run one layer's neurons over ``currents [T, B, N]``; returns spikes, membrane, synapse.

    Per step (docs/fixed-point.md): the reset uses the previous step's spike (snnTorch's
    delayed reset), the sum is exact, saturation happens once, the test is ``v > threshold``.
    """
    beta = spec.beta if beta is None else beta
    alpha = spec.alpha if alpha is None else alpha
    steps = currents.shape[0]
    zero = torch.zeros_like(currents[0])
    mem, syn, spk = zero, zero, torch.zeros_like(zero, dtype=torch.bool)
    spk_rec, mem_rec, syn_rec = [], [], []
    for t in range(steps):
        drive = currents[t]
        if spec.neuron_model == "syn":
            syn = arith.saturate(arith.leak(syn, spec.alpha_shift, alpha) + drive)
            syn_rec.append(syn)
            drive = syn
        leaked = arith.leak(mem, spec.beta_shift, beta)
        if spec.reset_mechanism == "subtract":
            mem = arith.saturate(leaked + drive - spk.to(mem.dtype) * threshold)
        elif spec.reset_mechanism == "zero" and spec.neuron_model == "syn":
            mem = torch.where(spk, zero, arith.saturate(leaked + drive))
        elif spec.reset_mechanism == "zero":
            mem = arith.saturate(torch.where(spk, zero, leaked) + drive)
        else:
            mem = arith.saturate(leaked + drive)
        spk = mem > threshold
        spk_rec.append(spk)
        mem_rec.append(mem)
    return (torch.stack(spk_rec), torch.stack(mem_rec),
            torch.stack(syn_rec) if syn_rec else None)


def _as_spikes(spikes: Any, n_inputs: int) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(spikes) if not isinstance(spikes, torch.Tensor) else spikes)
    if x.dim() != 3 or x.shape[-1] != n_inputs:
        raise DataError(f"spikes must be time-first [T, B, {n_inputs}], got {list(x.shape)}")
    check_spikes(x, "spikes")
    return x


@dataclass
class QuantizedNet:
    """A network as integers at one :class:`FixedPointConfig`; :meth:`run` is the hardware's behaviour."""

    spec: NetSpec
    config: FixedPointConfig
    layers: list[QuantizedLayer] = field(default_factory=list)
    saturated_weights: int = 0

    @classmethod
    def from_arrays(cls, spec: NetSpec, weights: list[np.ndarray], thresholds: list[float],
                    config: FixedPointConfig | Mapping[str, int]) -> QuantizedNet:
        """Quantize float weights ``[n_neurons, n_inputs]`` and thresholds per layer."""
        config = FixedPointConfig.from_dict(config)
        problem = config.structural_problem()
        if problem:
            raise InfeasibleConfigError(config, problem)
        layers, saturated = [], 0
        for layer, w, thr in zip(spec.layers, weights, thresholds, strict=True):
            w = np.asarray(w, dtype=np.float64)
            if w.shape != (layer.n_neurons, layer.n_inputs):
                raise DataError(f"{layer.name}: weights must be [{layer.n_neurons}, {layer.n_inputs}], "
                                f"got {list(w.shape)}")
            qw, n_sat = config.quantize_weights(w)
            saturated += n_sat
            layers.append(QuantizedLayer(
                spec=layer, weights=qw,
                threshold=config.quantize_threshold(thr, f"{layer.name}.threshold"),
                acc_bits=accumulator_bits(layer.n_inputs, config.weights_bw, config.neurons_bw)))
        return cls(spec=spec, config=config, layers=layers, saturated_weights=saturated)

    @classmethod
    def from_model(cls, snn: SpikingNet, config: FixedPointConfig | Mapping[str, int]) -> QuantizedNet:
        """Quantize a trained :class:`SpikingNet` (its learned thresholds, snapped leaks)."""
        weights = [fc.weight.detach().cpu().double().numpy() for fc in snn.fcs]
        thresholds = [snn.layer_threshold(i) for i in range(len(snn.fcs))]
        return cls.from_arrays(snn.spec, weights, thresholds, config)

    @property
    def weight_memory_bits(self) -> int:
        return sum(layer.weights.size for layer in self.layers) * self.config.weights_bw

    def run(self, spikes: Any, trace: bool = False) -> GoldenResult:
        """Run spike trains ``[T, B, n_inputs]`` (0/1) through the integer network."""
        x = _as_spikes(spikes, self.spec.n_inputs)
        steps, batch = x.shape[0], x.shape[1]
        arith = IntegerArithmetic(self.config)
        traces: list[LayerTrace] = []
        total = 0
        layer_in = x.to(torch.float32)
        activity = []
        for layer in self.layers:
            activity.append(layer_in.sum(-1))
            exact_f32 = layer.n_inputs * (1 << (self.config.weights_bw - 1)) < FLOAT32_EXACT
            dtype = torch.float32 if exact_f32 else torch.float64
            w = torch.from_numpy(layer.weights).to(dtype)
            flat = layer_in.reshape(steps * batch, -1).to(dtype)
            currents = (flat @ w.T).round().to(torch.int64).reshape(steps, batch, -1)
            spk, mem, syn = layer_dynamics(layer.spec, currents, layer.threshold, arith)
            total += mem.numel() * (2 if syn is not None else 1)
            if trace:
                traces.append(LayerTrace(
                    input_spikes=layer_in.to(torch.uint8).numpy(), membrane=mem.numpy(),
                    spikes=spk.to(torch.uint8).numpy(),
                    synapse=None if syn is None else syn.numpy()))
            layer_in = spk.to(torch.float32)
        out = layer_in.to(torch.uint8).numpy()
        counts = out.sum(axis=0, dtype=np.int64)
        return GoldenResult(counts=counts, predictions=readout.predict(counts), output_spikes=out,
                            saturated_updates=arith.saturated, total_updates=total,
                            traces=traces if trace else None,
                            activity=torch.stack(activity).to(torch.int64).numpy())


def quantize(snn: SpikingNet, optim_params: FixedPointConfig | Mapping[str, int]) -> QuantizedNet:
    """The integer network for a trained model at ``optim_params`` (the only quantizer)."""
    return QuantizedNet.from_model(snn, optim_params)


def run_float(snn: SpikingNet, spikes: Any) -> list[LayerTrace]:
    """The golden update with quantization removed: ``beta * v`` in float32, no saturation.

    Equals snnTorch's ``Leaky``/``Synaptic`` for the same weights (tested property).
    """
    x = _as_spikes(spikes, snn.spec.n_inputs).to(torch.float32)
    steps, batch = x.shape[0], x.shape[1]
    traces = []
    layer_in = x
    with torch.no_grad():
        for i, (layer, fc) in enumerate(zip(snn.spec.layers, snn.fcs)):
            neuron = snn.neurons[i]
            currents = fc(layer_in.reshape(steps * batch, -1)).reshape(steps, batch, -1)
            beta = neuron.beta.clamp(0, 1)
            alpha = neuron.alpha.clamp(0, 1) if layer.neuron_model == "syn" else None
            spk, mem, syn = layer_dynamics(layer, currents, neuron.threshold, _FloatArithmetic(),
                                           beta=beta, alpha=alpha)
            traces.append(LayerTrace(input_spikes=layer_in.to(torch.uint8).numpy(), membrane=mem.numpy(),
                                     spikes=spk.to(torch.uint8).numpy(),
                                     synapse=None if syn is None else syn.numpy()))
            layer_in = spk.to(torch.float32)
    return traces
