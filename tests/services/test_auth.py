"""Issue 16, item 9: stage services authenticate their caller and hold every request to the size limits."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from svc_support import dataset_spec, expect_error, tiny_net

from spiker.store import LocalStore
from spiker_api.limits import SizeLimits
from spiker_api.service_token import authorized_channel, load_service_token
from spiker_api.v1 import common_pb2, simulator_pb2, simulator_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from spiker_app.services import SERVICE_NAMES, build_stage_server
from spiker_services.common.runtime import Runtime

SECRET = "service-secret-0123456789abcdefghijkl"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("auth-store"))
    runtime = Runtime(store, max_jobs=1, work_root=tmp_path_factory.mktemp("auth-work"))
    server = build_stage_server(SERVICE_NAMES, runtime, port=0, service_token=SECRET,
                                limits=SizeLimits(max_epochs=50, max_samples=100))
    yield f"127.0.0.1:{server.port}", store
    server.stop(0).wait(10)


def _train_request(store: LocalStore, epochs: int) -> trainer_pb2.TrainRequest:
    from svc_support import tiny_npz

    from spiker_api.convert import ref_to_proto

    npz = ref_to_proto(store.put_bytes(tiny_npz(), kind="dataset"))
    return trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=dataset_spec(npz),
                                    config=trainer_pb2.TrainConfig(epochs=epochs, lr=0.01))


def test_a_call_without_the_service_token_is_unauthenticated(guarded) -> None:
    target, store = guarded
    request = _train_request(store, 1)
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)  # probes need no token
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
        expect_error(grpc.StatusCode.UNAUTHENTICATED, trainer.Train, request, timeout=10)
        wrong = (("authorization", "Bearer not-the-secret-0123456789abcdefgh"),)
        expect_error(grpc.StatusCode.UNAUTHENTICATED, trainer.Train, request, timeout=10, metadata=wrong)


def test_an_authenticated_call_is_held_to_the_limits(guarded) -> None:
    target, store = guarded
    with grpc.insecure_channel(target) as raw:
        channel = authorized_channel(raw, SECRET)
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
        detail = expect_error(grpc.StatusCode.INVALID_ARGUMENT, trainer.Train, _train_request(store, 100_000),
                              timeout=10)
        assert detail["field"] == "config.epochs"
        big = tiny_net()
        big.layers[0].n_neurons = 5000
        request = _train_request(store, 1)
        request.net_dict.CopyFrom(big)
        detail = expect_error(grpc.StatusCode.INVALID_ARGUMENT, trainer.Train, request, timeout=10)
        assert detail["field"].startswith("net_dict.")
        simulator = simulator_pb2_grpc.SimulatorServiceStub(channel)
        detail = expect_error(grpc.StatusCode.INVALID_ARGUMENT, simulator.Simulate,
                              simulator_pb2.SimulateRequest(n_samples=1000, model=common_pb2.ArtifactRef()),
                              timeout=10)
        assert detail["field"] == "n_samples"


def test_the_service_token_comes_from_a_file_or_the_environment(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    assert load_service_token({"SPIKER_SERVICE_TOKEN_FILE": str(path)}) == SECRET
    assert load_service_token({"SPIKER_SERVICE_TOKEN": SECRET}) == SECRET
    assert load_service_token({}) is None
    with pytest.raises(ValueError, match="32 characters"):
        load_service_token({"SPIKER_SERVICE_TOKEN": "short"})
