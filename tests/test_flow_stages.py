"""The library flow stages on an output folder (what ``spiker train|optimize|hdl|simulate`` run)."""

import copy

import yaml

from spiker.flow import parse_flow_spec, stages

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "encoding": "rate", "batch_size": 64, "seed": 0},
    "net": {"n_cycles": 4, "n_inputs": 64,
            "layer_0": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.875, "threshold": 1.0,
                        "reset_mechanism": "subtract"},
            "layer_1": {"neuron_model": "lif", "n_neurons": 10, "beta": 0.875, "threshold": 1.0,
                        "reset_mechanism": "none"}},
    "train": {"epochs": 1, "lr": 0.01, "seed": 0},
    "select": {"optim_params": {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 2}},
    "hdl": {"resources": False},
}


def test_hdl_stage_drops_the_resources_of_a_previous_design(tmp_path):
    spec = parse_flow_spec(copy.deepcopy(TINY))
    stages.hdl(spec, tmp_path, progress=False)
    package = (tmp_path / "hdl" / "spiker_net_pkg.vhd").read_text()
    resources = tmp_path / "resources.json"
    resources.write_text('{"lut": 1}')
    stages.hdl(spec, tmp_path, progress=False)  # same design: its resources still hold
    assert resources.read_text() == '{"lut": 1}'
    raw = copy.deepcopy(TINY)
    raw["select"]["optim_params"]["weights_bw"] = 5
    stages.hdl(parse_flow_spec(yaml.safe_load(yaml.safe_dump(raw))), tmp_path, progress=False)
    assert not resources.exists()
    assert (tmp_path / "hdl" / "spiker_net_pkg.vhd").read_text() != package


def test_hdl_resources_fast_writes_the_cost_models_estimate(tmp_path):
    import json

    import pytest

    from spiker.errors import SpecError

    raw = copy.deepcopy(TINY)
    raw["hdl"] = {"resources": "fast"}
    spec = parse_flow_spec(raw)
    assert spec.hdl.resources == "fast"
    stages.hdl(spec, tmp_path, progress=False)
    doc = json.loads((tmp_path / "resources.json").read_text())
    assert doc["method"] == "fast" and "not synthesized" in doc["note"] and doc["lut"] > 0 and doc["carry"] is None
    assert parse_flow_spec({**raw, "hdl": {"resources": True}}).hdl.resources == "synth"
    assert parse_flow_spec({**raw, "hdl": {"resources": "synth"}}).hdl.resources == "synth"
    assert parse_flow_spec({**raw, "hdl": {"resources": False}}).hdl.resources is None
    with pytest.raises(SpecError, match="hdl.resources.*'synth', 'fast'"):
        parse_flow_spec({**raw, "hdl": {"resources": "quick"}})


def test_hdl_row_register_parses_true_false_and_nothing_else():
    import pytest

    from spiker.errors import SpecError

    net = TINY["net"]
    assert parse_flow_spec({"net": net}).hdl.row_register is None
    assert "row_register" not in parse_flow_spec({"net": net}).to_dict()["hdl"]  # unset: cache keys unchanged
    for value in (True, False):
        spec = parse_flow_spec({"net": net, "hdl": {"row_register": value}})
        assert spec.hdl.row_register is value
        again = parse_flow_spec(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
        assert again.hdl == spec.hdl and again.digest("hdl") == spec.digest("hdl")
    assert parse_flow_spec({"net": net, **yaml.safe_load("hdl: {row_register: false}")}).hdl.row_register is False
    both = parse_flow_spec({"net": net, "hdl": {"row_register": False, "neurons_per_cycle": 2}})
    assert both.hdl.row_register is False and both.hdl.neurons_per_cycle == (2, 2)  # resolved, knob kept
    assert parse_flow_spec({"net": net, "hdl": {"row_register": False}}).digest("hdl") != \
        parse_flow_spec({"net": net}).digest("hdl")
    for value in ("false", 0, 1, None, [True]):
        with pytest.raises(SpecError, match="hdl.row_register: must be bool") as info:
            parse_flow_spec({"net": net, "hdl": {"row_register": value}})
        assert info.value.key == "hdl.row_register"
    for key in ("events_per_cycle", "testbench", "neurons_per_cycle"):  # bool is an int in Python, not here
        with pytest.raises(SpecError, match=f"hdl.{key}: must be int"):
            parse_flow_spec({"net": net, "hdl": {key: True}})


def test_hdl_stage_generates_the_lean_layer_when_the_spec_says_so(tmp_path):
    import json

    raw = copy.deepcopy(TINY)
    raw["hdl"] = {"resources": "fast"}
    default = stages.hdl(parse_flow_spec(raw), tmp_path, progress=False)
    package = tmp_path / "hdl" / "spiker_net_pkg.vhd"
    assert default.row_register is True and "ROW_REGISTER : boolean := true" in package.read_text()
    ff = json.loads((tmp_path / "resources.json").read_text())["ff"]
    raw["hdl"]["row_register"] = False
    lean = stages.hdl(parse_flow_spec(raw), tmp_path, progress=False)
    assert lean.row_register is False and "ROW_REGISTER : boolean := false" in package.read_text()
    # the estimate is of the lean design (the cost model reads its knob): no N * (weights_bw + E - 1) FF a layer
    assert json.loads((tmp_path / "resources.json").read_text())["ff"] < ff
