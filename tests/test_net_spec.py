import copy
import logging

import pytest
import torch

from spiker import NetBuilder, SpecError, SpikingNet
from spiker.errors import DataError
from spiker.net.spec import MAX_NEURONS, leak_from_shift, parse_net_dict, shift_for_leak
from tests.conftest_nets import DIGITS_NET, small_net


def _with(path, value, base=DIGITS_NET):
    net = copy.deepcopy(base)
    target = net
    *parents, last = path
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return net


@pytest.mark.parametrize("path, value, key, words", [
    (("layer_0", "bogus"), 1, "layer_0.bogus", "unknown key"),
    (("extra",), 1, "extra", "unknown key"),
    (("n_cycles",), KeyError, "n_cycles", "required"),
    (("n_inputs",), 0, "n_inputs", ">= 1"),
    (("n_inputs",), 1.5, "n_inputs", "integer"),
    (("n_cycles",), True, "n_cycles", "integer"),
    (("layer_0", "n_neurons"), -3, "layer_0.n_neurons", ">= 1"),
    (("layer_0", "n_neurons"), MAX_NEURONS + 1, "layer_0.n_neurons", "documented limit"),
    (("layer_1", "threshold"), 0.0, "layer_1.threshold", "> 0"),
    (("layer_1", "threshold"), "1", "layer_1.threshold", "number"),
    (("layer_0", "neuron_model"), "izhikevich", "layer_0.neuron_model", "one of lif, syn, if"),
    (("layer_0", "reset_mechanism"), "soft", "layer_0.reset_mechanism", "one of subtract, zero, none"),
    (("layer_0", "learn_beta"), "yes", "layer_0.learn_beta", "true or false"),
    (("layer_0", "beta"), None, "layer_0.beta", "required"),
    (("layer_0", "beta"), 1.5, "layer_0.beta", "[0, 1)"),
    (("layer_0", "beta"), 1.0, "layer_0.beta", "use neuron_model 'if'"),
    (("layer_0", "alpha"), 0.5, "layer_0.alpha", "only to 'syn'"),
    (("layer_0",), [1, 2], "layer_0", "dict"),
])
def test_each_bad_key_gets_its_own_message(path, value, key, words):
    with pytest.raises(SpecError) as err:
        NetBuilder(_with(path, value))
    assert err.value.key == key
    assert words in str(err.value)


def test_missing_and_non_consecutive_layers():
    with pytest.raises(SpecError, match="layer_1: is missing"):
        NetBuilder({"n_cycles": 5, "n_inputs": 3, "layer_0": DIGITS_NET["layer_1"], "layer_2": DIGITS_NET["layer_1"]})
    with pytest.raises(SpecError, match="layer_0: is required"):
        NetBuilder({"n_cycles": 5, "n_inputs": 3})
    with pytest.raises(SpecError, match="net: must be a dict"):
        NetBuilder([1, 2])


def test_syn_needs_alpha_and_if_has_no_leak():
    net = small_net(model="syn")
    del net["layer_0"]["alpha"]
    with pytest.raises(SpecError, match="layer_0.alpha: is required"):
        NetBuilder(net)
    with pytest.raises(SpecError, match="layer_0.beta: 'if' neurons have no leak"):
        NetBuilder(_with(("layer_0", "beta"), 0.5, small_net(model="if")))
    spec = parse_net_dict(small_net(model="if"))
    assert spec.layers[0].beta == 1.0 and spec.layers[0].beta_shift is None


def test_beta_snapping_warns_and_strict_rejects(caplog):
    assert [leak_from_shift(k) for k in (1, 2, 4)] == [0.5, 0.75, 0.9375]
    assert shift_for_leak(0.9) == 3  # 0.875 is nearer than 0.9375
    net = _with(("layer_0", "beta"), 0.9)
    with caplog.at_level(logging.WARNING):
        builder = NetBuilder(net)
    assert "snapped to 0.875" in caplog.text
    assert builder.spec.layers[0].beta == 0.875
    snn = builder.build()
    assert float(snn.neurons[0].beta) == 0.875  # trained with the snapped value
    with pytest.raises(SpecError, match="layer_0.beta: 0.9 is not realisable.*nearest is 0.875"):
        NetBuilder(net, strict=True)
    NetBuilder(DIGITS_NET, strict=True)  # realisable values pass strict mode


def test_alpha_snapping():
    spec = parse_net_dict(small_net(model="syn", alpha=0.7))
    assert spec.layers[0].alpha == 0.75 and spec.layers[0].alpha_shift == 2


def test_learned_beta_is_snapped_after_training(caplog):
    net = _with(("layer_0", "learn_beta"), True, small_net())
    snn = NetBuilder(net).build(seed=0)
    with torch.no_grad():
        snn.neurons[0].beta.fill_(0.81)
    with caplog.at_level(logging.INFO):
        snn.snap_learned_leaks()
    assert float(snn.neurons[0].beta.detach()) == 0.75
    assert snn.spec.layers[0].beta_shift == 2
    assert "snapped" in caplog.text


def test_model_input_layout_and_output_shape():
    snn = NetBuilder(small_net(n_inputs=6, sizes=(5, 3))).build(seed=1)
    out = snn(torch.ones(8, 4, 6))
    assert out.spikes.shape == (8, 4, 3) and out.membrane.shape == (8, 4, 3)
    assert out.counts.shape == (4, 3)
    with pytest.raises(DataError, match=r"\[T, B, 6\]"):
        snn(torch.ones(4, 6))
    with pytest.raises(DataError, match="time-first"):
        snn(torch.ones(8, 6, 4))
    assert all(fc.bias is None for fc in snn.fcs)


def test_save_load_round_trip(tmp_path):
    snn = NetBuilder(_with(("layer_0", "beta"), 0.9)).build(seed=3)
    path = snn.save(tmp_path / "m.pt")
    loaded = SpikingNet.load(path)
    assert loaded.spec == snn.spec
    x = (torch.rand(25, 3, 64) < 0.3).float()
    with torch.no_grad():
        assert torch.equal(loaded(x).spikes, snn(x).spikes)
    with pytest.raises(FileNotFoundError):
        SpikingNet.load(tmp_path / "nope.pt")


def test_build_seed_fixes_weights():
    a = NetBuilder(DIGITS_NET).build(seed=5)
    b = NetBuilder(DIGITS_NET).build(seed=5)
    c = NetBuilder(DIGITS_NET).build(seed=6)
    assert torch.equal(a.fcs[0].weight, b.fcs[0].weight)
    assert not torch.equal(a.fcs[0].weight, c.fcs[0].weight)


def test_spec_round_trips_through_net_dict():
    spec = parse_net_dict(small_net(model="syn", sizes=(4, 4, 2)))
    assert parse_net_dict(spec.to_dict()) == spec
