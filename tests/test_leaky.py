"""spiker.net.leaky: the all-steps Leaky layer gives snnTorch's step-by-step spikes, membranes and
gradients to the last bit, and nets it does not cover still run step by step."""

from __future__ import annotations

import copy

import pytest
import torch
from snntorch import surrogate

from spiker import NetBuilder
from spiker.net import leaky
from spiker.training import make_loss


def _net(reset: str, threshold: float | int, beta: float, **extra) -> torch.nn.Module:
    layer = {"neuron_model": "if", "threshold": threshold, **extra} if beta == 1 else \
        {"neuron_model": "lif", "beta": beta, "threshold": threshold, **extra}
    return NetBuilder({"n_cycles": 30, "n_inputs": 12, "layer_0": {**layer, "n_neurons": 20, "reset_mechanism": reset},
                       "layer_1": {**layer, "n_neurons": 4, "reset_mechanism": "none"}}).build(seed=3)


def _train(net, data, labels, monkeypatch, step_by_step: bool, steps: int = 3):
    """Weights after ``steps`` Adam steps, and the last forward's output (snnTorch's loop if ``step_by_step``)."""
    with monkeypatch.context() as patch:
        if step_by_step:
            patch.setattr(leaky, "supports", lambda neuron: False)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
        loss_fn = make_loss("ce_rate")
        for _ in range(steps):
            out = net(data)
            loss = loss_fn(out.spikes, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        records = net.layer_records(data)
    return [p.detach().clone() for p in net.parameters()], records


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("threshold,beta", [(1.0, 0.9375), (0.5, 0.75), (1, 1.0)])
def test_all_steps_layer_equals_snntorch_step_by_step(reset, threshold, beta, monkeypatch):
    generator = torch.Generator().manual_seed(7)
    data = (torch.rand(30, 16, 12, generator=generator) < 0.4).float()
    labels = torch.randint(0, 4, (16,), generator=generator)
    fast = _net(reset, threshold, beta)
    assert all(leaky.supports(neuron) for neuron in fast.neurons)
    reference = copy.deepcopy(fast)
    weights_fast, records_fast = _train(fast, data, labels, monkeypatch, step_by_step=False)
    weights_ref, records_ref = _train(reference, data, labels, monkeypatch, step_by_step=True)
    assert any(not torch.equal(w, w0) for w, w0 in zip(weights_fast, _net(reset, threshold, beta).parameters()))
    for w_fast, w_ref in zip(weights_fast, weights_ref):
        assert torch.equal(w_fast, w_ref)
    for rec_fast, rec_ref in zip(records_fast, records_ref):
        assert rec_fast.keys() == rec_ref.keys()
        for key in rec_ref:
            assert torch.equal(rec_fast[key], rec_ref[key]), key
    assert 0 < float(records_fast[0]["spikes"].detach().mean()) < 1  # spikes and silences: the reset was exercised


@pytest.mark.parametrize("spikes_too", [True, False])
def test_gradient_through_the_membrane_too(spikes_too, monkeypatch):
    """A loss on the membrane (with or without the spikes) gets snnTorch's gradient (to float rounding)."""
    generator = torch.Generator().manual_seed(1)
    data = (torch.rand(30, 8, 12, generator=generator) < 0.4).float()
    grads = []
    for step_by_step in (False, True):
        net = _net("subtract", 1.0, 0.875)
        with monkeypatch.context() as patch:
            if step_by_step:
                patch.setattr(leaky, "supports", lambda neuron: False)
            out = net(data)
            ((out.spikes.sum() if spikes_too else 0) + (out.membrane ** 2).sum()).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for fast, ref in zip(*grads):
        torch.testing.assert_close(fast, ref)


def test_neurons_it_does_not_cover_run_step_by_step():
    learned = _net("subtract", 1.0, 0.875, learn_beta=True, learn_threshold=True)
    assert not any(leaky.supports(neuron) for neuron in learned.neurons)
    other_surrogate = _net("subtract", 1.0, 0.875)
    other_surrogate.neurons[0].spike_grad = surrogate.fast_sigmoid()
    assert not leaky.supports(other_surrogate.neurons[0]) and leaky.supports(other_surrogate.neurons[1])
    syn = NetBuilder({"n_cycles": 5, "n_inputs": 3, "layer_0": {"neuron_model": "syn", "n_neurons": 2,
                                                               "alpha": 0.5, "beta": 0.5}}).build(seed=0)
    assert not leaky.supports(syn.neurons[0])
    for net in (learned, other_surrogate):
        out = net((torch.rand(30, 2, 12) < 0.5).float())
        out.spikes.sum().backward()
        assert net.fcs[0].weight.grad is not None
