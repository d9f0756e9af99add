"""Bad requests get the right status code and name the offending field; never UNKNOWN/INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from svc_support import Stack, dataset_spec, expect_error, tiny_net

from spiker.store import S3Store
from spiker_api.errors import remap_field
from spiker_api.v1 import common_pb2, hdlgen_pb2, hdlgen_pb2_grpc, optimizer_pb2, simulator_pb2, trainer_pb2
from spiker_app.services import build_stage_server
from spiker_services.common.runtime import Runtime

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MISSING_SHA = "0" * 64


PARAMS = common_pb2.OptimParams(weights_bw=6, neurons_bw=8, fp_dec=3)
MISSING = common_pb2.ArtifactRef(key=f"artifacts/sha256/00/{MISSING_SHA}", sha256=MISSING_SHA, size=1)


def bad_field(fn: object, request: object, **kwargs: object) -> str:
    """The field an INVALID_ARGUMENT error of ``fn(request)`` names."""
    return expect_error(INVALID, fn, request, **kwargs)["field"]


def test_malformed_net_dict_names_the_field(local_stack: Stack) -> None:
    net = tiny_net()
    net.layers[0].beta = 1.5
    request = trainer_pb2.TrainRequest(net_dict=net, dataset=dataset_spec(local_stack.npz))
    detail = expect_error(INVALID, local_stack.trainer.Train, request, timeout=30)
    assert detail["field"] == "net_dict.layers[0].beta" and detail["reason"] == "SPEC_ERROR"
    assert "[0, 1)" in detail["message"]

    net = tiny_net()
    net.layers[1].ClearField("neuron_model")
    request = trainer_pb2.TrainRequest(net_dict=net, dataset=dataset_spec(local_stack.npz))
    assert bad_field(local_stack.trainer.Train, request) == "net_dict.layers[1].neuron_model"

    request = trainer_pb2.TrainRequest(net_dict=common_pb2.NetDict(n_cycles=0, n_inputs=8),
                                       dataset=dataset_spec(local_stack.npz))
    assert bad_field(local_stack.trainer.Train, request).startswith("net_dict.")


def test_bad_train_config_and_dataset(local_stack: Stack) -> None:
    request = trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=dataset_spec(local_stack.npz),
                                       config=trainer_pb2.TrainConfig(epochs=0))
    assert bad_field(local_stack.trainer.Train, request) == "config.epochs"
    request.config.CopyFrom(trainer_pb2.TrainConfig(loss="hinge"))
    assert bad_field(local_stack.trainer.Train, request) == "config.loss"
    request = trainer_pb2.TrainRequest(net_dict=tiny_net(),
                                       dataset=common_pb2.DatasetSpec(builtin="/etc/secret.npz"))
    assert bad_field(local_stack.trainer.Train, request) == "dataset.builtin"
    request = trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=common_pb2.DatasetSpec(
        builtin="digits", encoding="morse"))
    assert bad_field(local_stack.trainer.Train, request) == "dataset.encoding"
    request = trainer_pb2.TrainRequest(net_dict=tiny_net())
    assert bad_field(local_stack.trainer.Train, request) == "dataset"


def test_bad_artifact_ref(local_stack: Stack) -> None:
    request = hdlgen_pb2.GenerateRequest(model=common_pb2.ArtifactRef(key="artifacts/x", sha256="zz", size=1),
                                         optim_params=PARAMS)
    assert bad_field(local_stack.hdlgen.Generate, request) == "model.sha256"
    request.model.CopyFrom(common_pb2.ArtifactRef(key="../etc/passwd", sha256=MISSING_SHA, size=1))
    assert bad_field(local_stack.hdlgen.Generate, request) == "model.key"


@pytest.mark.slow
def test_infeasible_bit_widths(local_stack: Stack) -> None:
    model = local_stack.model()
    for params in ({"weights_bw": 1, "neurons_bw": 8, "fp_dec": 3},    # below the 2-bit minimum
                   {"weights_bw": 6, "neurons_bw": 4, "fp_dec": 4}):   # fp_dec >= neurons_bw
        request = hdlgen_pb2.GenerateRequest(model=model, optim_params=common_pb2.OptimParams(**params))
        detail = expect_error(INVALID, local_stack.hdlgen.Generate, request, timeout=60)
        assert detail["field"] == "optim_params" and detail["reason"] == "INFEASIBLE_CONFIG", detail
    request = simulator_pb2.SimulateRequest(model=model, dataset=dataset_spec(local_stack.npz),
                                            optim_params=common_pb2.OptimParams(weights_bw=6, neurons_bw=3))
    assert bad_field(local_stack.simulator.Simulate, request, timeout=60) == "optim_params"


def test_missing_artifact_is_not_found(stack: Stack) -> None:
    missing = common_pb2.ArtifactRef(bucket=stack.store.bucket, key=f"artifacts/sha256/00/{MISSING_SHA}",
                                     sha256=MISSING_SHA, size=10)
    request = hdlgen_pb2.GenerateRequest(model=missing, optim_params=common_pb2.OptimParams(
        weights_bw=6, neurons_bw=8, fp_dec=3))
    detail = expect_error(grpc.StatusCode.NOT_FOUND, stack.hdlgen.Generate, request, timeout=30)
    assert detail["field"] == "model" and detail["reason"] == "ARTIFACT_NOT_FOUND"
    request = trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=dataset_spec(missing))
    assert expect_error(grpc.StatusCode.NOT_FOUND, stack.trainer.Train, request)["field"] == "dataset.npz"
    merge = optimizer_pb2.MergeSweepRequest(task_key="tasks/sweep/none/task.json", shard_count=1)
    assert expect_error(grpc.StatusCode.NOT_FOUND, stack.optimizer.MergeSweep, merge)["field"] == "task_key"


def test_bad_sweep_settings(local_stack: Stack) -> None:
    model = MISSING
    ranges = common_pb2.OptimRanges(weights_bw=common_pb2.BitRange(min=6, max=4),
                                    neurons_bw=common_pb2.BitRange(min=6, max=8),
                                    fp_dec=common_pb2.BitRange(min=2, max=3))
    settings = optimizer_pb2.SweepSettings(model=model, dataset=dataset_spec(local_stack.npz),
                                           ranges=ranges)
    request = optimizer_pb2.OptimizeRequest(settings=settings)
    assert bad_field(local_stack.optimizer.Optimize, request) == "settings.ranges.weights_bw"
    request.settings.ranges.ClearField("fp_dec")
    request.settings.ranges.weights_bw.max = 8
    assert bad_field(local_stack.optimizer.Optimize, request) == "settings.ranges.fp_dec"
    task = optimizer_pb2.CreateSweepTaskRequest(settings=request.settings)
    assert bad_field(local_stack.optimizer.CreateSweepTask, task) == "settings.ranges.fp_dec"


def test_oversized_request_is_refused(local_stack: Stack) -> None:
    net = tiny_net()
    for _ in range(20_000):  # ~ 200 KB > the test servers' 64 KiB cap
        net.layers.add(neuron_model=common_pb2.NEURON_MODEL_LIF, n_neurons=3, beta=0.5)
    request = trainer_pb2.TrainRequest(net_dict=net, dataset=dataset_spec(local_stack.npz))
    assert request.ByteSize() > 64 * 1024
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, local_stack.trainer.Train, request, timeout=30)
    # within the cap but over the library's documented limits: INVALID_ARGUMENT naming the field
    small = tiny_net()
    small.layers[0].n_neurons = 100_000
    request = trainer_pb2.TrainRequest(net_dict=small, dataset=dataset_spec(local_stack.npz))
    assert bad_field(local_stack.trainer.Train, request) == "net_dict.layers[0].n_neurons"


def test_store_down_is_unavailable(tmp_path) -> None:  # noqa: ANN001
    from s3_server import free_port

    store = S3Store(f"127.0.0.1:{free_port()}", "k", "secret-key", "spiker", False, connect_timeout=0.5,
                    retries=0)
    server = build_stage_server(["hdlgen"], Runtime(store, work_root=tmp_path, worker_env={}), port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = hdlgen_pb2_grpc.HdlgenServiceStub(channel)
            request = hdlgen_pb2.GenerateRequest(model=MISSING, optim_params=PARAMS)
            detail = expect_error(grpc.StatusCode.UNAVAILABLE, stub.Generate, request, timeout=30)
            assert detail["reason"] == "STORE_UNAVAILABLE" and detail["field"] == "model"
    finally:
        server.stop(0).wait(5)


def test_remap_field() -> None:
    assert remap_field("net.layer_2.beta", {"net": "net_dict"}) == "net_dict.layers[2].beta"
    assert remap_field("train.lr", {"train": "config"}) == "config.lr"
    assert remap_field("optim_config.fp_dec.min", {"optim_config": "settings.ranges"}) == \
        "settings.ranges.fp_dec.min"
    assert remap_field("other", {"net": "net_dict"}) == "other"


def test_errors_use_the_standard_rich_status(local_stack: Stack) -> None:
    """The trailer is ``grpc-status-details-bin`` (google.rpc.Status with ErrorInfo and BadRequest), nothing custom."""
    from google.rpc import error_details_pb2, status_pb2

    net = tiny_net()
    net.layers[0].beta = 1.5
    request = trainer_pb2.TrainRequest(net_dict=net, dataset=dataset_spec(local_stack.npz))
    with pytest.raises(grpc.RpcError) as info:
        list(local_stack.trainer.Train(request, timeout=30))
    trailers = dict(info.value.trailing_metadata())
    assert not [k for k in trailers if k.startswith("spiker-")], trailers.keys()
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "[0, 1)" in status.message
    error_info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(error_info) and status.details[1].Unpack(bad)
    assert error_info.reason == "SPEC_ERROR" and error_info.domain == "spiker.v1"
    assert error_info.metadata["field"] == "net_dict.layers[0].beta"
    assert [v.field for v in bad.field_violations] == ["net_dict.layers[0].beta"]
    from grpc_status import rpc_status  # the standard reader (checks code and message against the call)

    assert rpc_status.from_call(info.value) == status
