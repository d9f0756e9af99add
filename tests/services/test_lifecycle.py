"""Health, reflection, cancellation, deadlines, queueing, SIGTERM and the sweep worker entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from svc_support import (
    ROOT,
    Stack,
    dataset_spec,
    expect_error,
    pid_gone,
    ranges_proto,
    tiny_net,
    wait_clean,
)

from spiker.errors import SpecError
from spiker.store import LocalStore
from spiker_api.convert import ref_from_proto
from spiker_api.v1 import optimizer_pb2, trainer_pb2, trainer_pb2_grpc
from spiker_app.services import build_stage_server
from spiker_services.common.runtime import Runtime
from spiker_services.optimizer.worker import worker_sweep

SERVICES = ["spiker.v1.TrainerService", "spiker.v1.OptimizerService", "spiker.v1.HdlgenService",
            "spiker.v1.SimulatorService"]


def long_train(stack_npz) -> trainer_pb2.TrainRequest:  # noqa: ANN001
    """Training that runs for minutes: the epoch limit on a net with many steps (the tiny net's
    1000 epochs take only seconds since a Leaky layer runs all its steps in one node)."""
    net = tiny_net()
    net.n_cycles = 2000
    net.layers[0].n_neurons = 256
    return trainer_pb2.TrainRequest(net_dict=net, dataset=dataset_spec(stack_npz),
                                    config=trainer_pb2.TrainConfig(epochs=1000, lr=0.01))  # the limit


def test_health_and_reflection(local_stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(local_stack.channel)
    for service in ["", *SERVICES]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    expect_error(grpc.StatusCode.NOT_FOUND, health.Check, health_pb2.HealthCheckRequest(service="nope"))
    db = ProtoReflectionDescriptorDatabase(local_stack.channel)
    assert set(SERVICES) <= set(db.get_services())
    assert "grpc.health.v1.Health" in db.get_services()
    proto = db.FindFileContainingSymbol("spiker.v1.TrainRequest")
    assert proto.name == "spiker/v1/trainer.proto" and "spiker/v1/common.proto" in proto.dependency


@pytest.mark.slow
def test_cancel_mid_stream_stops_the_work(local_stack: Stack) -> None:
    stream = local_stack.trainer.Train(long_train(local_stack.npz), timeout=120)
    pids: set[int] = set()
    for response in stream:
        pids |= set(local_stack.runtime.active_pids)
        if response.progress.phase == "epoch":
            break
    assert pids, "the job ran in a child process"
    stream.cancel()
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert all(pid_gone(pid) for pid in pids)
    wait_clean(local_stack.runtime)


@pytest.mark.slow
def test_deadline_stops_the_work(local_stack: Stack) -> None:
    started = time.monotonic()
    expect_error(grpc.StatusCode.DEADLINE_EXCEEDED, local_stack.trainer.Train, long_train(local_stack.npz),
                 timeout=4)
    assert time.monotonic() - started < 10
    wait_clean(local_stack.runtime)


@pytest.mark.slow
def test_second_call_waits_in_queue(tmp_path: Path, local_stack: Stack) -> None:
    runtime = Runtime(local_stack.store, max_jobs=1, work_root=tmp_path / "work")
    server = build_stage_server(["trainer"], runtime, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = trainer_pb2_grpc.TrainerServiceStub(channel)
            first = stub.Train(long_train(local_stack.npz), timeout=60)
            assert next(first).progress.phase  # running
            second = stub.Train(long_train(local_stack.npz), timeout=60)
            event = next(second).progress
            assert event.phase == "queued" and event.current == 1
            assert runtime.queued == 1
            second.cancel()
            first.cancel()
            wait_clean(runtime)
            assert runtime.queued == 0
    finally:
        server.stop(0).wait(5)


@pytest.mark.slow
def test_serve_cli_sigterm_graceful(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPIKER_S3_ENDPOINT": ""}
    proc = subprocess.Popen([sys.executable, "-m", "spiker_app.serve", "serve", "hdlgen", "--port", "0",
                             "--store", str(tmp_path / "store"), "--grace", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(60, proc.kill)
        timer.start()
        line = proc.stdout.readline()
        timer.cancel()
        assert "listening on 127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
        port = int(line.rsplit(":", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="spiker.v1.HdlgenService"), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_worker_cli_as_indexed_job(local_stack: Stack) -> None:
    """CreateSweepTask, two `spiker worker sweep` processes indexed by JOB_COMPLETION_INDEX, MergeSweep."""
    settings = optimizer_pb2.SweepSettings(model=local_stack.model(), dataset=dataset_spec(local_stack.npz),
                                           ranges=ranges_proto())
    task = local_stack.optimizer.CreateSweepTask(
        optimizer_pb2.CreateSweepTaskRequest(settings=settings, shard_count=2), timeout=30)
    assert task.n_configs == 8 and task.shard_count == 2 and len(task.shard_keys) == 2
    assert local_stack.store.get_json(task.task_key)["ranges"]["fp_dec"] == {"min": 2, "max": 3}
    base = {**os.environ, **local_stack.runtime.worker_env}
    worker = [sys.executable, "-m", "spiker_app.serve", "worker", "sweep", "--task", task.task_key]
    procs = [subprocess.Popen([*worker, "--count", "2"], env={**base, "JOB_COMPLETION_INDEX": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == list(task.shard_keys)
    merged = local_stack.optimizer.MergeSweep(optimizer_pb2.MergeSweepRequest(
        task_key=task.task_key, shard_count=2, max_accuracy_drop=1.0), timeout=60)
    assert merged.n_configs == 8 and merged.task_key == task.task_key and merged.HasField("selected")
    rows = json.loads(local_stack.store.get_bytes(ref_from_proto(merged.sweep_json, "sweep_json")))["rows"]
    assert [(r["weights_bw"], r["neurons_bw"], r["fp_dec"]) for r in rows] == sorted(
        (w, n, f) for w in (4, 5) for n in (6, 7) for f in (2, 3))
    # a third worker with a bad index fails with a parseable error line
    bad = subprocess.run([*worker, "--index", "5", "--count", "2"], env=base, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and '"field": "index"' in bad.stderr


def test_worker_index_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    with pytest.raises(SpecError) as info:
        worker_sweep("tasks/sweep/x/task.json", None, 2)
    assert info.value.key == "index"
    monkeypatch.setenv("SPIKER_S3_ENDPOINT", "")
    monkeypatch.setenv("SPIKER_STORE_DIR", str(tmp_path))
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    LocalStore(tmp_path)
    with pytest.raises(KeyError):  # index 1 accepted; the task document does not exist
        worker_sweep("tasks/sweep/x/task.json", None, 2)
