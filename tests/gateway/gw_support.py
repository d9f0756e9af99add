"""Shared pieces of the gateway tests: tokens, a tiny dataset and spec, stage services in-process or as a process."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = "tok-alice-0123456789abcdefghijklmnop", "tok-bob-0123456789abcdefghijklmnopqr"
TOKENS = {ALICE: "alice", BOB: "bob"}
#: bit-widths that fit the tiny net (skips the sweep)
TINY_PARAMS = {"weights_bw": 5, "neurons_bw": 8, "fp_dec": 3}


def tiny_npz() -> bytes:
    """A learnable 3-class dataset: 90 samples of 8 features in [0, 1]."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.uniform(0.0, 0.3, size=(90, 8))
    for c in range(3):
        x[y == c, c * 2:c * 2 + 3] += 0.7
    buf = io.BytesIO()
    np.savez(buf, x=np.clip(x, 0, 1).astype(np.float32), y=y.astype(np.int64))
    return buf.getvalue()


def tiny_spec(artifact: str | None = None, name: str = "tiny", **sections: Any) -> dict[str, Any]:
    """An 8-6-3 LIF net, 5 steps, 1 epoch, explicit bit-widths, 10 simulated samples, no resources."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": ({"artifact": artifact, "name": "tiny.npz", "batch_size": 32, "test_fraction": 0.3}
                    if artifact else {"name": "digits"}),
        "net": {"n_cycles": 5, "n_inputs": 8,
                "layer_0": {"neuron_model": "lif", "n_neurons": 6, "beta": 0.75},
                "layer_1": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75}},
        "train": {"epochs": 1, "lr": 0.01},
        "select": {"optim_params": dict(TINY_PARAMS)},
        "hdl": {"resources": False},
        "simulate": {"samples": 10},
    }
    spec.update(sections)
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(target: str, timeout: float = 120.0) -> None:
    """Wait until a gRPC server at ``target`` answers its health check with SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise TimeoutError(f"{target} not healthy after {timeout}s")


class ServicesProcess:
    """``python -m spiker_app.serve serve all`` as a child process (its own session), on a fixed port."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spiker_app.serve", "serve", "all", "--host", "127.0.0.1", "--port",
               str(self.port), "--max-jobs", "2"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env={**os.environ, **self.env}, cwd=ROOT, stdout=log, stderr=log,
                                         start_new_session=True)
        wait_healthy(self.target)

    def kill(self) -> None:
        """SIGKILL the service's whole process group (the server and the jobs it started)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
