"""Pure pieces of the gateway: cache keys, retry back-off, spec validation and limits."""

from __future__ import annotations

import json

import pytest
from gw_support import tiny_spec

from spiker.errors import SpecError
from spiker_gateway.cache import cache_key, code_version
from spiker_gateway.stages import RetryPolicy, plan
from spiker_gateway.validate import Limits, validate_spec

REF = {"bucket": "b", "key": "artifacts/sha256/aa/" + "a" * 64, "sha256": "a" * 64, "size": 1}


def test_cache_key_depends_on_inputs_config_and_code() -> None:
    base = cache_key("train", {"dataset": REF}, {"epochs": 1}, code="1")
    assert base == cache_key("train", {"dataset": dict(REF, bucket="other", key="x")}, {"epochs": 1}, code="1")
    assert base != cache_key("train", {"dataset": dict(REF, sha256="b" * 64)}, {"epochs": 1}, code="1")
    assert base != cache_key("train", {"dataset": REF}, {"epochs": 2}, code="1")
    assert base != cache_key("train", {"dataset": REF}, {"epochs": 1}, code="2")
    assert base != cache_key("hdlgen", {"dataset": REF}, {"epochs": 1}, code="1")
    assert code_version().startswith("0.") and "+" in code_version()
    assert len({code_version(s) for s in ("train", "optimize", "hdlgen", "simulate")}) == 4


def test_retry_backoff_is_bounded() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=8.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_stage_plans_follow_the_spec() -> None:
    spec = validate_spec(json.dumps(tiny_spec("c" * 64)), Limits())
    train = plan("train", spec, {}, REF)
    assert train.request.dataset.npz.sha256 == "a" * 64 and train.request.config.epochs == 1
    assert set(train.config) == {"dataset", "net", "train"} and train.inputs == {"dataset": REF}
    from spiker_api.v1 import common_pb2, trainer_pb2

    results = {"train": trainer_pb2.TrainResult(model=common_pb2.ArtifactRef(**REF))}
    assert plan("optimize", spec, results, REF).request is None  # explicit optim_params: no sweep
    hdl = plan("hdlgen", spec, results, REF)
    assert hdl.request.optim_params.neurons_bw == 8 and hdl.request.estimate_resources is False
    assert hdl.request.testbench == 0 and "testbench" not in hdl.config  # no kit: cache keys unchanged
    kit = plan("hdlgen", validate_spec(json.dumps(tiny_spec("c" * 64, hdl={"testbench": 5})), Limits()),
               results, REF)
    assert kit.request.testbench == 5 and kit.request.dataset.npz.sha256 == "a" * 64
    assert kit.config["testbench"] == 5 and kit.inputs["dataset"] == REF


@pytest.mark.parametrize("change,field", [
    ({"net": {"n_cycles": 5, "n_inputs": 5000, "layer_0": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75}}},
     "net.n_inputs"),
    ({"net": {"n_cycles": 5, "n_inputs": 1000,
              "layer_0": {"neuron_model": "lif", "n_neurons": 1001, "beta": 0.75}}}, "net.layer_0.n_neurons"),
    ({"simulate": {"samples": 10**6}}, "simulate.samples"),
    ({"dataset": {"name": "my.npz"}}, "dataset.name"),
])
def test_limits_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_spec(json.dumps(tiny_spec(**change)), Limits())
    assert info.value.key == field


def test_yaml_and_json_specs_are_equal() -> None:
    import yaml

    a = validate_spec(json.dumps(tiny_spec()), Limits())
    b = validate_spec(yaml.safe_dump(tiny_spec()), Limits())
    assert a.digest() == b.digest()


def test_the_spec_row_register_reaches_hdlgen_synth_and_the_simulator() -> None:
    from spiker_api.v1 import common_pb2, hdlgen_pb2, optimizer_pb2, trainer_pb2

    ref = common_pb2.ArtifactRef(**REF)
    results = {"train": trainer_pb2.TrainResult(model=ref), "hdlgen": hdlgen_pb2.GenerateResult(vhdl_tar=ref)}
    default = validate_spec(json.dumps(tiny_spec("c" * 64, hdl={"resources": "fast"})), Limits())
    for stage in ("hdlgen", "synth", "simulate"):
        planned = plan(stage, default, results, REF)
        assert not planned.request.HasField("row_register") and "row_register" not in planned.config  # cache keys
    lean = validate_spec(json.dumps(tiny_spec("c" * 64, hdl={"resources": "fast", "row_register": False})), Limits())
    for stage in ("hdlgen", "synth", "simulate"):
        planned = plan(stage, lean, results, REF)
        assert planned.request.HasField("row_register") and planned.request.row_register is False, stage
        assert planned.config["row_register"] is False, stage
    # over the optimizer's selection (which costs the default row register only), beside its events_per_cycle
    swept = {**results, "optimize": optimizer_pb2.OptimizeResult(selected_events_per_cycle=1)}
    spec = validate_spec(json.dumps(tiny_spec("c" * 64, hdl={"row_register": False})), Limits())
    request = plan("hdlgen", spec, swept, REF).request
    assert (request.events_per_cycle, request.row_register) == (1, False)
