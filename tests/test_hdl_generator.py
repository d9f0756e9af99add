"""The generator (no GHDL needed): thin generated code, integers from the golden model."""

import re

import numpy as np
import pytest
from hdl_nets import layer, random_net

from spiker.golden import QuantizedNet
from spiker.hdl import RTL_FILES, VhdlGenerator
from spiker.net import NetBuilder
from spiker.net.spec import parse_net_dict

SEED_NET = {"n_cycles": 73, "n_inputs": 40, "layer_0": layer("lif", 128, beta=0.9375),
            "layer_1": layer("lif", 10, "none", beta=0.9375)}


def _constant(text: str, name: str) -> list[int]:
    m = re.search(rf"constant {name}\s*:[^:]*:= \(?(.*?)\)?;", text, re.S)
    body = m.group(1).replace("0 =>", "")
    return [int(v) for v in re.findall(r"-?\d+", body)]


def test_seed_readme_sample_generates_code():
    snn = NetBuilder(SEED_NET).build(seed=0)
    vhdl_snn = VhdlGenerator(snn, {"weights_bw": 6, "neurons_bw": 8, "fp_dec": 4}).generate()
    code = vhdl_snn.code()
    for entity in ("snn_layer", "spiker_core", "spiker_top", "spiker_tb", "spike_readout"):
        assert f"entity {entity} is" in code
    assert list(vhdl_snn.files)[:len(RTL_FILES)] == list(RTL_FILES)


def test_package_integers_come_from_the_golden_quantizer():
    q = random_net(3, max_layers=3)
    design = VhdlGenerator(q).generate()
    pkg = design.files["spiker_net_pkg.vhd"]
    for i, lay in enumerate(q.layers):
        assert _constant(pkg, f"L{i}_WEIGHTS") == lay.weights.T.ravel().tolist()
        assert _constant(pkg, f"L{i}_THRESHOLD") == [lay.threshold]
        assert _constant(pkg, f"L{i}_ACC") == [lay.acc_bits]


def test_equal_shape_layers_keep_their_own_weights():
    spec = parse_net_dict({"n_cycles": 5, "n_inputs": 4, "layer_0": layer("lif", 4),
                           "layer_1": layer("lif", 4)})
    rng = np.random.default_rng(1)
    q = QuantizedNet.from_arrays(spec, [rng.normal(size=(4, 4)), rng.normal(size=(4, 4))], [1.0, 1.0],
                                 {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 2})
    design = VhdlGenerator(q).generate()
    pkg, core = design.files["spiker_net_pkg.vhd"], design.files["spiker_core.vhd"]
    assert _constant(pkg, "L0_WEIGHTS") != _constant(pkg, "L1_WEIGHTS")
    assert "WEIGHTS => L0_WEIGHTS" in core and "WEIGHTS => L1_WEIGHTS" in core


def test_generated_code_is_thin_and_writes(tmp_path):
    design = VhdlGenerator(random_net(5)).generate()
    for name in design.generated_files:
        assert "process" not in design.files[name] or name == "spiker_tb.vhd"
    paths = design.write(tmp_path)
    assert [p.name for p in paths] == list(design.files)
    assert (tmp_path / "spiker_top.vhd").read_text() == design.files["spiker_top.vhd"]


def test_single_input_single_neuron_and_wide_weights():
    spec = parse_net_dict({"n_cycles": 3, "n_inputs": 1, "layer_0": layer("if", 1)})
    q = QuantizedNet.from_arrays(spec, [np.array([[1.5]])], [0.5],
                                 {"weights_bw": 6, "neurons_bw": 6, "fp_dec": 2})
    pkg = VhdlGenerator(q).generate().files["spiker_net_pkg.vhd"]
    assert "integer_vector(0 to 1 - 1) := (0 => 6)" in pkg


@pytest.mark.parametrize("model", ["lif", "syn"])
def test_registers_wider_than_a_vhdl_integer_are_refused_before_generating(model):
    """neuron_unit's registers are integers (docs/fixed-point.md): at most INTEGER_REGISTER_BITS."""
    from spiker.errors import InfeasibleConfigError
    from spiker.hdl.generator import INTEGER_REGISTER_BITS, register_bits

    spec = parse_net_dict({"n_cycles": 3, "n_inputs": 2, "layer_0": layer(model, 2)})

    def net(wb, nb):
        return QuantizedNet.from_arrays(spec, [np.array([[0.5, -0.25], [0.75, 0.5]])], [1.0],
                                        {"weights_bw": wb, "neurons_bw": nb, "fp_dec": 2})

    widest = max(nb for nb in range(8, 33) if register_bits(net(6, nb).layers[0].weights, nb,
                                                            int(net(6, nb).layers[0].threshold), model)
                 <= INTEGER_REGISTER_BITS)
    assert widest == INTEGER_REGISTER_BITS - (2 if model == "syn" else 1)
    VhdlGenerator(net(6, widest)).generate()
    with pytest.raises(InfeasibleConfigError, match=f"neurons_bw={widest + 1} needs .*at most 31 bits"):
        VhdlGenerator(net(6, widest + 1))
    with pytest.raises(InfeasibleConfigError, match="neurons_bw=32"):
        VhdlGenerator(net(6, 32), events_per_cycle=1)
    with pytest.raises(InfeasibleConfigError, match="weights_bw=31 with events_per_cycle=2 .*weights_bw <= 30"):
        VhdlGenerator(net(31, 31))
    # a time-multiplexed layer's registers are signed vectors: no integer limit
    VhdlGenerator(net(6, 32), neurons_per_cycle=1).generate()


def test_events_per_cycle_default_two_and_one_on_request():
    q = random_net(5, max_layers=2)
    two = VhdlGenerator(q).generate()
    one = VhdlGenerator(q, events_per_cycle=1).generate()
    assert two.events_per_cycle == 2 and one.events_per_cycle == 1
    assert "EVENTS_PER_CYCLE : positive := 2;" in two.files["spiker_net_pkg.vhd"]
    assert "EVENTS_PER_CYCLE : positive := 1;" in one.files["spiker_net_pkg.vhd"]
    core = two.files["spiker_core.vhd"]
    assert core.count("EVENTS_PER_CYCLE => EVENTS_PER_CYCLE") == len(q.layers)
    assert one.with_file("spiker_top.vhd", "").events_per_cycle == 1
    for bad in (0, 3, True):
        with pytest.raises(ValueError, match="events_per_cycle"):
            VhdlGenerator(q, events_per_cycle=bad)


def test_event_cycle_model():
    from spiker.hdl.sim import event_bound, event_cycles

    # a[l, t, b]: 2 layers, 4 steps, 1 sample; uint like the golden traces' sums
    a = np.array([[[0], [1], [4], [5]], [[0], [3], [1], [0]]], dtype=np.uint64)
    assert event_bound(a).tolist() == [0 + 3 + 4 + 5]  # sum_t max_l a_l(t)
    # a fully parallel layer: max(ceil(a / E), 1) + 2 update phases a step (3 for syn)
    assert event_cycles(a, 1).tolist() == [1 + 3 + 4 + 5 + 4 * 2]
    assert event_cycles(a, 2).tolist() == [1 + 2 + 2 + 3 + 4 * 2]
    assert event_cycles(a, 2, models=["lif", "syn"]).tolist() == [(1 + 3) + (2 + 3) + (2 + 2) + (3 + 2)]
