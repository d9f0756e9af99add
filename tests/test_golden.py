"""The golden model against hand-computed examples and against snnTorch."""

import numpy as np
import pytest
import snntorch as snn_lib
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spiker import InfeasibleConfigError, NetBuilder, quantize
from spiker.golden import FixedPointConfig, QuantizedNet, accumulator_bits, run_float
from spiker.net.spec import parse_net_dict
from tests.conftest_nets import small_net


def one_neuron(model="lif", reset="subtract", weights=(1.0,), threshold=1.0, beta=0.5, alpha=0.5,
               bits=(8, 8, 2)):
    spec = parse_net_dict(small_net(n_inputs=len(weights), sizes=(1,), model=model, reset=reset,
                                    beta=beta, alpha=alpha, threshold=threshold))
    cfg = FixedPointConfig(*bits)
    return QuantizedNet.from_arrays(spec, [np.array([weights])], [threshold], cfg)


def membrane(qnet, spikes):
    x = torch.tensor(spikes, dtype=torch.float32)[:, None, :]
    trace = qnet.run(x, trace=True).traces[0]
    return trace.membrane[:, 0, 0].tolist(), trace.spikes[:, 0, 0].tolist()


def test_lif_subtract_hand_computed():
    # fp_dec=2: weight 1.0 -> 4, threshold 1.0 -> 4, beta 0.5 -> v - (v >> 1)
    q = one_neuron()
    assert q.layers[0].weights.tolist() == [[4]] and q.layers[0].threshold == 4
    mem, spk = membrane(q, [[1], [1], [1], [0], [0]])
    # t0: 0+4=4 (not > 4); t1: 4-2+4=6 spike; t2: 6-3+4-4=3; t3: 3-1=2 (3>>1=1); t4: 2-1=1
    assert mem == [4, 6, 3, 2, 1]
    assert spk == [0, 1, 0, 0, 0]


def test_threshold_exactly_reached_does_not_spike():
    q = one_neuron(model="if", weights=(0.5,), threshold=1.0)
    mem, spk = membrane(q, [[1], [1], [1]])
    assert mem == [2, 4, 6] and spk == [0, 0, 1]


def test_negative_membrane_and_arithmetic_shift():
    q = one_neuron(weights=(-1.25,))  # -5
    mem, _ = membrane(q, [[1], [0], [0], [0]])
    # -5 - (-5 >> 1) = -5 - (-3) = -2 ; -2 - (-1) = -1 ; -1 - (-1) = 0
    assert mem == [-5, -2, -1, 0]


def test_saturation_at_both_ends_counted():
    q = one_neuron(model="if", reset="none", weights=(9.0,), threshold=1.0, bits=(6, 6, 2))
    # weight 36 saturates to 31 (6 bits); membrane saturates at 31
    assert q.layers[0].weights.tolist() == [[31]] and q.saturated_weights == 1
    result = q.run(torch.ones(3, 1, 1), trace=True)
    assert result.traces[0].membrane[:, 0, 0].tolist() == [31, 31, 31]
    assert result.saturated_updates == 2
    neg = one_neuron(model="if", reset="none", weights=(-5.0,), threshold=1.0, bits=(6, 6, 2))
    assert neg.run(torch.ones(2, 1, 1), trace=True).traces[0].membrane[:, 0, 0].tolist() == [-20, -32]


def test_zero_reset_lif_keeps_step_input():
    q = one_neuron(reset="zero", weights=(1.5,))  # 6
    mem, spk = membrane(q, [[1], [1], [1]])
    # t0: 6 spike; t1: reset -> 0 + 6 = 6 spike; t2: 6
    assert mem == [6, 6, 6] and spk == [1, 1, 1]


def test_syn_subtract_and_zero_hand_computed():
    q = one_neuron(model="syn", weights=(1.0,), beta=0.5, alpha=0.5)
    trace = q.run(torch.tensor([[[1.0]], [[0.0]], [[0.0]]]), trace=True).traces[0]
    # syn: 4, 4-2=2, 2-1=1 ; mem: 4, 4-2+2=4, 4-2+1=3
    assert trace.synapse[:, 0, 0].tolist() == [4, 2, 1]
    assert trace.membrane[:, 0, 0].tolist() == [4, 4, 3]
    qz = one_neuron(model="syn", reset="zero", weights=(2.0,), beta=0.5, alpha=0.5)
    tz = qz.run(torch.tensor([[[1.0]], [[0.0]], [[0.0]]]), trace=True).traces[0]
    # syn: 8, 4, 2 ; mem: 8 spike, reset -> 0 (syn not reset), then 0 + 2 = 2
    assert tz.synapse[:, 0, 0].tolist() == [8, 4, 2]
    assert tz.membrane[:, 0, 0].tolist() == [8, 0, 2]


def test_no_reset_keeps_integrating():
    q = one_neuron(model="if", reset="none", weights=(1.25,))
    mem, spk = membrane(q, [[1], [1], [0]])
    assert mem == [5, 10, 10] and spk == [1, 1, 1]


@pytest.mark.parametrize("bits, reason", [
    ((6, 6, 6), "fp_dec=6 >= neurons_bw=6"),
    ((8, 6, 2), "weights_bw=8 > neurons_bw=6"),
    ((1, 6, 2), "outside the supported"),
    ((4, 6, 4), "needs 16 but the membrane holds at most 31"),  # fits: 16 <= 31 -> not raised
])
def test_infeasible_configs_have_reasons(bits, reason):
    spec = parse_net_dict(small_net(n_inputs=1, sizes=(1,)))
    if bits == (4, 6, 4):
        q = QuantizedNet.from_arrays(spec, [np.ones((1, 1))], [1.0], FixedPointConfig(*bits))
        assert q.layers[0].threshold == 16
        with pytest.raises(InfeasibleConfigError, match="threshold=2 needs 32 but the membrane holds at most 31"):
            QuantizedNet.from_arrays(spec, [np.ones((1, 1))], [2.0], FixedPointConfig(*bits))
        return
    with pytest.raises(InfeasibleConfigError, match=reason):
        QuantizedNet.from_arrays(spec, [np.ones((1, 1))], [1.0], FixedPointConfig(*bits))


def test_threshold_rounding_to_zero_is_infeasible():
    spec = parse_net_dict(small_net(n_inputs=1, sizes=(1,), threshold=0.1))
    with pytest.raises(InfeasibleConfigError, match="rounds to 0"):
        QuantizedNet.from_arrays(spec, [np.ones((1, 1))], [0.1], FixedPointConfig(4, 6, 2))


def test_accumulator_bits_bound():
    assert accumulator_bits(1, 2, 2) == 4
    assert accumulator_bits(128, 6, 8) >= 1 + int(np.ceil(np.log2(2**8 + 128 * 32)))


def test_run_is_batched_and_order_independent():
    snn = NetBuilder(small_net(n_inputs=10, sizes=(7, 4), n_cycles=12)).build(seed=2)
    q = quantize(snn, {"weights_bw": 5, "neurons_bw": 8, "fp_dec": 3})
    x = (torch.rand(12, 9, 10) < 0.4).float()
    full = q.run(x)
    one_by_one = np.concatenate([q.run(x[:, i:i + 1]).counts for i in range(9)])
    assert np.array_equal(full.counts, one_by_one)
    assert full.predictions.tolist() == full.counts.argmax(1).tolist()


def _tutorial_loop(snn, x):
    """snnTorch's own step loop with fresh neurons of the same parameters (the reference)."""
    spikes_in = x
    for layer, fc, neuron in zip(snn.spec.layers, snn.fcs, snn.neurons):
        if layer.neuron_model == "syn":
            ref = snn_lib.Synaptic(alpha=float(neuron.alpha), beta=float(neuron.beta),
                                   threshold=float(neuron.threshold), reset_mechanism=layer.reset_mechanism)
            syn = mem = torch.zeros(x.shape[1], layer.n_neurons)
        else:
            ref = snn_lib.Leaky(beta=float(neuron.beta), threshold=float(neuron.threshold),
                                reset_mechanism=layer.reset_mechanism)
            mem = torch.zeros(x.shape[1], layer.n_neurons)
        out = []
        for t in range(x.shape[0]):
            cur = fc(spikes_in[t])
            if layer.neuron_model == "syn":
                spk, syn, mem = ref(cur, syn, mem)
            else:
                spk, mem = ref(cur, mem)
            out.append(spk)
        spikes_in = torch.stack(out)
    return spikes_in


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["lif", "syn", "if"]), reset=st.sampled_from(["subtract", "zero", "none"]),
       beta_k=st.integers(1, 6), alpha_k=st.integers(1, 6), seed=st.integers(0, 10_000),
       sizes=st.lists(st.integers(1, 9), min_size=1, max_size=3), threshold=st.sampled_from([0.5, 1.0, 1.5]))
def test_float_mode_equals_snntorch(model, reset, beta_k, alpha_k, seed, sizes, threshold):
    net = small_net(n_inputs=5, sizes=tuple(sizes), model=model, reset=reset, n_cycles=10,
                    beta=1 - 2.0 ** -beta_k, alpha=1 - 2.0 ** -alpha_k, threshold=threshold)
    snn = NetBuilder(net, strict=True).build(seed=seed)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(3)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(10, 4, 5, generator=gen) < 0.5).float()
    with torch.no_grad():
        reference = _tutorial_loop(snn, x)
    traces = run_float(snn, x)
    assert np.array_equal(traces[-1].spikes, reference.numpy().astype(np.uint8))
