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
from torch.autograd.function import once_differentiable

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
    """``current [T, B, N] -> (spikes, membrane) [T, B, N]``; beta and threshold are constants.

    Each step writes into its slice of the outputs (no per-step tensors, copies or indexing);
    every value is computed by the same float operation on the same operands as in snnTorch
    (in-place and ``out=`` forms round alike, and ``a * b == b * a``, ``a + b == b + a`` exactly).
    """

    @staticmethod
    def forward(ctx, current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, mechanism: int,
                alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        membrane = torch.empty_like(current)
        fired = torch.empty(current.shape, dtype=torch.bool, device=current.device)
        scratch = torch.empty_like(current[0])
        mem = torch.zeros_like(current[0])
        reset = torch.gt(mem - threshold, 0)  # snnTorch's first reset, on the zero membrane
        for cur, new, spike in zip(current.unbind(0), membrane.unbind(0), fired.unbind(0)):
            if mechanism == ZERO:  # beta * ((1 - reset) * mem) + cur
                torch.mul(torch.logical_not(reset), mem, out=new)
                new.mul_(beta)
            else:  # beta * mem + cur (- reset * threshold)
                torch.mul(mem, beta, out=new)
            new.add_(cur)
            if mechanism == SUBTRACT:
                new.sub_(torch.mul(reset, threshold, out=scratch))
            torch.gt(torch.sub(new, threshold, out=scratch), 0, out=spike)  # ATan's forward: (mem - thr > 0)
            mem, reset = new, spike  # the next step's reset is this step's spike (graded factor 1)
        ctx.mechanism, ctx.alpha = mechanism, alpha
        ctx.save_for_backward(membrane, fired, beta, threshold)
        ctx.set_materialize_grads(False)  # an output no loss uses gets None, not zeros to add
        return fired.to(current.dtype), membrane

    @staticmethod
    @once_differentiable  # a gradient of this backward (create_graph=True) is refused, not wrong
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_membrane: torch.Tensor | None):
        membrane, fired, beta, threshold = ctx.saved_tensors
        alpha = ctx.alpha
        if grad_spikes is None:
            grad = torch.zeros_like(membrane)
        else:  # snnTorch's ATan backward, alpha / 2 / (1 + (pi / 2 * alpha * x).pow_(2)) * grad, all steps at
            # once: x * c, ^2, + 1, then Tensor.__rdiv__'s reciprocal() * (alpha / 2), then * grad
            grad = (membrane - threshold).mul_(math.pi / 2 * alpha).pow_(2).add_(1).reciprocal_().mul_(alpha / 2)
            grad.mul_(grad_spikes)
        if grad_membrane is not None:
            grad.add_(grad_membrane)
        # then back through time: a membrane's gradient also flows into the previous one through beta
        # (and through the reset-to-zero factor 1 - reset, the previous step's spike)
        steps = grad.unbind(0)
        keep = torch.logical_not(fired) if ctx.mechanism == ZERO else None
        scratch = torch.empty_like(steps[0])
        for t in range(len(steps) - 2, -1, -1):
            torch.mul(steps[t + 1], beta, out=scratch)
            if keep is not None:
                scratch.mul_(keep[t])
            steps[t].add_(scratch)
        return grad, None, None, None, None


def leaky_layer(neuron: snn.Leaky, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, membrane)`` ``[T, B, N]`` of ``neuron`` (:func:`supports` it) driven by ``current``
    ``[T, B, N]`` from a zero membrane, equal to calling it step by step."""
    return _LeakyLayer.apply(current, neuron.beta.clamp(0, 1), neuron.threshold, int(neuron.reset_mechanism_val),
                             _alpha(neuron))
