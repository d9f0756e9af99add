"""A small Python client of the gateway (used by the CLI and the tests; example in docs/gateway.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from spiker_api.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from spiker_gateway.run_files import DOWNLOAD_NAMES, download_path  # noqa: F401 - re-exported (moved there)

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
        """The newest ``limit`` runs (0: all), newest first, fetched page by page."""
        runs: list[gateway_pb2.Run] = []
        token = ""
        while True:
            want = min(1000, limit - len(runs)) if limit > 0 else 0
            page = self.stub.ListRuns(gateway_pb2.ListRunsRequest(limit=want, page_token=token),
                                      metadata=self.metadata, timeout=timeout)
            runs.extend(page.runs)
            token = page.next_page_token
            if not token or (limit > 0 and len(runs) >= limit):
                return runs[:limit] if limit > 0 else runs

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

    # -- results out ---------------------------------------------------------------------------
    def stream_artifact(self, run_id: str, name: str, timeout: float | None = 600,
                        ) -> tuple[gateway_pb2.ArtifactHeader, Iterator[bytes]]:
        """The header of one file of a run (a name of ``Run.artifacts``) and its bytes in chunks."""
        stream = self.stub.GetArtifact(gateway_pb2.GetArtifactRequest(run_id=run_id, name=name),
                                       metadata=self.metadata, timeout=timeout)
        first = next(stream)
        if first.WhichOneof("part") != "header":
            raise ValueError(f"GetArtifact {name}: the stream did not start with a header")

        def chunks() -> Iterator[bytes]:
            for part in stream:
                yield part.chunk

        return first.header, chunks()

    def get_artifact(self, run_id: str, name: str, timeout: float | None = 600) -> bytes:
        """The bytes of one file of a run, checked against its sha256."""
        header, chunks = self.stream_artifact(run_id, name, timeout)
        data = b"".join(chunks)
        _check(header, hashlib.sha256(data).hexdigest(), len(data))
        return data

    def download(self, run_id: str, name: str, dest: str | Path, timeout: float | None = 600) -> Path:
        """Write one file of a run to ``dest`` (atomically, once its sha256 matches); returns the path."""
        path = Path(dest)
        path.parent.mkdir(parents=True, exist_ok=True)
        header, chunks = self.stream_artifact(run_id, name, timeout)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            h, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            _check(header, h.hexdigest(), size)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def download_run(self, run_id: str, dest: str | Path, timeout: float | None = 600) -> list[Path]:
        """Write a run's results under ``dest``: ``vhdl/``, ``plots/``, ``model.pt``, ``sweep.csv``/``.json``,
        ``sim.json``, ``resources.json``, ``report.json``/``.md``, ``record.json`` (what the run has)."""
        root = Path(dest)
        run = self.get(run_id)
        names = set(run.artifacts) | {f"{s.name}.{out}" for s in run.stages for out in s.outputs}
        written = []
        for name in sorted(names):
            rel = download_path(name)
            if rel is not None:
                written.append(self.download(run_id, name, root / rel, timeout))
        readable(root, written)
        return written


def readable(root: Path, files: list[Path]) -> None:
    """Give downloaded ``files`` mode 0644 and the folders from ``root`` down to them 0755 (a
    download is written through a private temporary file, 0600)."""
    folders = {root}
    for path in files:
        path.chmod(0o644)
        folders.update(p for p in path.parents if p == root or root in p.parents)
    for folder in folders:
        folder.chmod(0o755)


def _check(header: gateway_pb2.ArtifactHeader, sha256: str, size: int) -> None:
    if size != header.ref.size or sha256 != header.ref.sha256:
        raise OSError(f"download of {header.name} is corrupt: {size} bytes sha256 {sha256[:16]}..., expected "
                      f"{header.ref.size} bytes {header.ref.sha256[:16]}...")
