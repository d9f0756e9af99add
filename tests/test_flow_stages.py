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
