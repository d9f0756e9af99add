"""A small Python client of the gateway (used by the CLI and the tests)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from spiker_api.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 1024 * 1024
FINAL_STATES = (gateway_pb2.RUN_STATE_SUCCEEDED, gateway_pb2.RUN_STATE_FAILED, gateway_pb2.RUN_STATE_CANCELLED)


def state_name(state: int) -> str:
    """``succeeded`` for RUN_STATE_SUCCEEDED, ``queued``, ``running``, ..."""
    try:
        return gateway_pb2.RunState.Name(state).removeprefix("RUN_STATE_").lower()
    except ValueError:
        return str(state)


def stage_state_name(state: int) -> str:
    """``succeeded`` for STAGE_STATE_SUCCEEDED, ``pending``, ``skipped``, ..."""
    try:
        return gateway_pb2.StageState.Name(state).removeprefix("STAGE_STATE_").lower()
    except ValueError:
        return str(state)


def _is_loopback(target: str) -> bool:
    """Whether ``host:port`` names this machine (plaintext there never leaves it)."""
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.") or host.startswith("unix")


class GatewayClient:
    """Calls a gateway at ``target`` with ``authorization: Bearer <token>``; TLS when ``ca_cert`` is given."""

    def __init__(self, target: str, token: str | None, ca_cert: str | None = None) -> None:
        if ca_cert:
            creds = grpc.ssl_channel_credentials(Path(ca_cert).read_bytes())
            self.channel = grpc.secure_channel(target, creds)
        else:
            if not _is_loopback(target):
                log.warning("gateway %s: no CA certificate given, so this client uses PLAINTEXT: the token and "
                            "data travel unencrypted (give --ca-cert for TLS)", target)
            self.channel = grpc.insecure_channel(target)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, spec: str | dict[str, Any], no_cache: bool = False, timeout: float = 60) -> gateway_pb2.Run:
        """Submit a spec (YAML/JSON text or a dict)."""
        text = spec if isinstance(spec, str) else json.dumps(spec)
        return self.stub.SubmitRun(gateway_pb2.SubmitRunRequest(spec=text, no_cache=no_cache),
                                   metadata=self.metadata, timeout=timeout)

    def get(self, run_id: str, timeout: float = 30) -> gateway_pb2.Run:
        return self.stub.GetRun(gateway_pb2.GetRunRequest(run_id=run_id), metadata=self.metadata, timeout=timeout)

    def list(self, limit: int = 0, timeout: float = 30) -> list[gateway_pb2.Run]:
        return list(self.stub.ListRuns(gateway_pb2.ListRunsRequest(limit=limit), metadata=self.metadata,
                                       timeout=timeout).runs)

    def cancel(self, run_id: str, timeout: float = 60) -> gateway_pb2.Run:
        return self.stub.CancelRun(gateway_pb2.CancelRunRequest(run_id=run_id), metadata=self.metadata,
                                   timeout=timeout)

    def watch(self, run_id: str, timeout: float | None = None) -> Iterator[gateway_pb2.RunEvent]:
        """The run's events until its summary."""
        return self.stub.WatchRun(gateway_pb2.WatchRunRequest(run_id=run_id), metadata=self.metadata,
                                  timeout=timeout)

    def wait(self, run_id: str, timeout: float | None = None) -> gateway_pb2.Run:
        """Watch until the run ends; returns the final record."""
        for event in self.watch(run_id, timeout):
            if event.WhichOneof("event") == "summary":
                return event.summary
        return self.get(run_id)

    def upload_bytes(self, data: bytes, filename: str, timeout: float = 300) -> common_pb2.ArtifactRef:
        """Upload an .npz dataset; returns its ArtifactRef (put its sha256 in ``dataset.artifact``)."""
        def parts() -> Iterator[gateway_pb2.UploadDatasetRequest]:
            yield gateway_pb2.UploadDatasetRequest(header=gateway_pb2.UploadHeader(filename=filename,
                                                                                   size=len(data)))
            for i in range(0, len(data), UPLOAD_CHUNK):
                yield gateway_pb2.UploadDatasetRequest(chunk=data[i:i + UPLOAD_CHUNK])

        return self.stub.UploadDataset(parts(), metadata=self.metadata, timeout=timeout).artifact

    def upload(self, path: str | Path, timeout: float = 300) -> common_pb2.ArtifactRef:
        p = Path(path)
        return self.upload_bytes(p.read_bytes(), p.name, timeout)
