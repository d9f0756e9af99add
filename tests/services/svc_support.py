"""Shared pieces of the service tests: a tiny dataset and net, a four-service server, stream helpers."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # spiker_services/ and spiker_api/ until pyproject packages them
    sys.path.insert(0, str(ROOT))

from spiker.store import ArtifactStore  # noqa: E402
from spiker_api.errors import error_detail  # noqa: E402
from spiker_api.v1 import (  # noqa: E402
    common_pb2,
    hdlgen_pb2_grpc,
    optimizer_pb2_grpc,
    simulator_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from spiker_app.services import SERVICE_NAMES, build_stage_server  # noqa: E402
from spiker_services.common.runtime import Runtime  # noqa: E402
from spiker_services.common.server import StageServer  # noqa: E402

N_INPUTS, SIZES, N_CYCLES = 8, (6, 3), 5
#: small message cap of the test servers, so the oversized-request test sends little
MAX_MESSAGE_BYTES = 64 * 1024


def tiny_npz() -> bytes:
    """A learnable 3-class dataset: 90 samples of 8 features in [0, 1]."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.uniform(0.0, 0.3, size=(90, N_INPUTS))
    for c in range(3):
        x[y == c, c * 2:c * 2 + 3] += 0.7
    buf = io.BytesIO()
    np.savez(buf, x=np.clip(x, 0, 1).astype(np.float32), y=y.astype(np.int64))
    return buf.getvalue()


def tiny_net() -> common_pb2.NetDict:
    """The 8-6-3 LIF net, 5 steps."""
    net = common_pb2.NetDict(n_cycles=N_CYCLES, n_inputs=N_INPUTS)
    for n in SIZES:
        net.layers.add(neuron_model=common_pb2.NEURON_MODEL_LIF, n_neurons=n, beta=0.75, threshold=1.0)
    return net


def dataset_spec(npz_ref: common_pb2.ArtifactRef) -> common_pb2.DatasetSpec:
    return common_pb2.DatasetSpec(npz=npz_ref, batch_size=32, seed=0, test_fraction=0.3)


class Stack:
    """A server hosting the four services on one store, with stubs on one channel."""

    def __init__(self, store: ArtifactStore, work_root: Path, max_jobs: int = 2,
                 worker_env: dict[str, str] | None = None) -> None:
        self.store = store
        self.runtime = Runtime(store, max_jobs=max_jobs, work_root=work_root, worker_env=worker_env)
        self.server: StageServer = build_stage_server(SERVICE_NAMES, self.runtime, port=0,
                                                      max_message_bytes=MAX_MESSAGE_BYTES, max_queue=4)
        self.target = f"127.0.0.1:{self.server.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(self.channel)
        self.optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self.channel)
        self.hdlgen = hdlgen_pb2_grpc.HdlgenServiceStub(self.channel)
        self.simulator = simulator_pb2_grpc.SimulatorServiceStub(self.channel)
        from spiker_api.convert import ref_to_proto

        self.npz = ref_to_proto(store.put_bytes(tiny_npz(), kind="dataset"))
        self._model: common_pb2.ArtifactRef | None = None

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0).wait(10)

    def offer_model(self, ref: common_pb2.ArtifactRef) -> None:
        """Use ``ref`` (a model a test trained here) as :meth:`model`'s, unless it has one already."""
        if self._model is None:
            self._model = ref

    def model(self) -> common_pb2.ArtifactRef:
        """A trained model in this store (trained once per stack)."""
        if self._model is None:
            request = trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=dataset_spec(self.npz),
                                               config=trainer_pb2.TrainConfig(epochs=1, lr=0.01))
            *_, last = self.trainer.Train(request, timeout=120)
            self._model = last.result.model
        return self._model





def drain(stream: Iterable[Any]) -> tuple[list[Any], Any]:
    """All progress events of a response stream and its one result."""
    progress, results = [], []
    for response in stream:
        if response.WhichOneof("event") == "progress":
            progress.append(response.progress)
        else:
            results.append(response.result)
    assert len(results) == 1, f"expected one result, got {len(results)}"
    return progress, results[0]


def expect_error(code: grpc.StatusCode, fn: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
    """Call (and for streams, drain) ``fn``; it must fail with ``code``. Returns the error detail."""
    with pytest.raises(grpc.RpcError) as info:
        result = fn(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
            list(result)
    err = info.value
    assert err.code() == code, f"{err.code()} != {code}: {err.details()}"
    return error_detail(err)


def wait_clean(runtime: Any, timeout: float = 15.0) -> None:
    """Wait until the runtime has no child processes and its work root is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runtime.active_pids and not any(Path(runtime.work_root).iterdir()):
            return
        time.sleep(0.1)
    raise AssertionError(f"not cleaned up: pids {runtime.active_pids}, "
                         f"work {list(Path(runtime.work_root).iterdir())}")


def pid_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


RANGES = {"weights_bw": (4, 5), "neurons_bw": (6, 7), "fp_dec": (2, 3)}


def ranges_proto() -> common_pb2.OptimRanges:
    bounds = {k: common_pb2.BitRange(min=lo, max=hi) for k, (lo, hi) in RANGES.items()}
    return common_pb2.OptimRanges(**bounds)
