"""A layer of snnTorch ``Leaky`` neurons over all time steps in one autograd node, bit for bit snnTorch's.

snnTorch's ``Leaky.forward`` is one Python call per step and layer that sets module buffers,
runs its surrogate spike function twice (once for the reset, once for the spike) and builds
about ten autograd nodes; at 73 steps that Python work, not arithmetic, was most of a training
step. :func:`leaky_layer` runs the same recurrence with the same float operations in the same
order on tensors without a graph, and its backward is the same chain rule written out (snnTorch's
ATan surrogate: ``alpha / 2 / (1 + (pi / 2 * alpha * x)^2)``), so spikes, membranes and
gradients are equal to snnTorch's to the last bit (tests/test_leaky.py checks it).

It covers what spiker builds by default: ``snn.Leaky`` with the ATan surrogate, fixed beta and
threshold, graded spike factor 1, no state quantization or inhibition, delayed reset.
:func:`supports` says whether a neuron is such; other neurons (learned beta or threshold,
``Synaptic``) run step by step through snnTorch.
"""

from __future__ import annotations

import math

import snntorch as snn
import torch
from snntorch import surrogate

#: reset mechanisms as snnTorch numbers them (``SpikingNeuron.reset_dict``)
SUBTRACT, ZERO, NONE = 0, 1, 2


def supports(neuron: torch.nn.Module) -> bool:
    """Whether :func:`leaky_layer` computes exactly what ``neuron`` computes step by step."""
    if type(neuron) is not snn.Leaky:
        return False
    spike_grad = getattr(neuron, "spike_grad", None)
    closure = getattr(spike_grad, "__closure__", None) or ()
    return (getattr(spike_grad, "__qualname__", "") == surrogate.atan(2.0).__qualname__
            and [type(cell.cell_contents) for cell in closure] == [float]
            and isinstance(neuron.beta, torch.Tensor) and not neuron.beta.requires_grad
            and isinstance(neuron.threshold, torch.Tensor) and not neuron.threshold.requires_grad
            and not neuron.graded_spikes_factor.requires_grad and float(neuron.graded_spikes_factor) == 1.0
            and not neuron.state_quant and not neuron.inhibition and not neuron.init_hidden
            and neuron.reset_delay and neuron.reset_mechanism_val in (SUBTRACT, ZERO, NONE))


def _alpha(neuron: snn.Leaky) -> float:
    """The ATan surrogate's slope (the float its closure holds)."""
    return float(neuron.spike_grad.__closure__[0].cell_contents)


class _LeakyLayer(torch.autograd.Function):
    """``current [T, B, N] -> (spikes, membrane) [T, B, N]``; beta and threshold are constants."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, mechanism: int,
                alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        spikes = torch.empty_like(current)
        membrane = torch.empty_like(current)
        mem = torch.zeros_like(current[0])
        reset = (mem - threshold).gt(0).float()  # snnTorch's first reset, on the zero membrane
        for t, cur in enumerate(current.unbind(0)):
            if mechanism == SUBTRACT:
                mem = beta * mem + cur - reset * threshold
            elif mechanism == ZERO:
                mem = beta * ((1 - reset) * mem) + cur
            else:
                mem = beta * mem + cur
            membrane[t] = mem
            spikes[t] = (mem - threshold).gt(0)  # snnTorch's ATan forward: (x > 0).float()
            reset = spikes[t]  # the next step's reset is this step's spike (graded factor 1)
        ctx.mechanism, ctx.alpha = mechanism, alpha
        ctx.save_for_backward(membrane, spikes, beta, threshold)
        return spikes, membrane

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_membrane: torch.Tensor | None):
        membrane, spikes, beta, threshold = ctx.saved_tensors
        alpha = ctx.alpha
        grad_current = torch.empty_like(membrane)
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(membrane)
        # the ATan surrogate's backward, elementwise over all steps at once (same operations as snnTorch's)
        through_spike = alpha / 2 / (1 + (math.pi / 2 * alpha * (membrane - threshold)).pow_(2)) * grad_spikes
        later = None  # the gradient of the next step's membrane
        for t in range(membrane.shape[0] - 1, -1, -1):
            grad = through_spike[t]
            if grad_membrane is not None:
                grad = grad + grad_membrane[t]
            if later is not None:
                back = later * beta
                if ctx.mechanism == ZERO:
                    back = back * (1 - spikes[t])
                grad = grad + back
            grad_current[t] = grad
            later = grad
        return grad_current, None, None, None, None


def leaky_layer(neuron: snn.Leaky, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, membrane)`` ``[T, B, N]`` of ``neuron`` (:func:`supports` it) driven by ``current``
    ``[T, B, N]`` from a zero membrane, equal to calling it step by step."""
    return _LeakyLayer.apply(current, neuron.beta.clamp(0, 1), neuron.threshold, int(neuron.reset_mechanism_val),
                             _alpha(neuron))
