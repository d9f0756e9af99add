"""A Docker engine for the deploy tests, through the Docker SDK: the running one, else one started here.

:func:`docker_engine` yields ``(client, DOCKER_HOST)``. It uses ``DOCKER_HOST``/the default socket
when an engine answers there; else, as root, it starts ``dockerd --iptables=false --bridge=none``
with its own data-root and exec-root under ``root`` (no registry is assumed; containers use host
networking), waits at most 90 s for it, and stops it afterwards. When neither works it calls
``pytest.skip`` with the reason. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: seconds a started dockerd gets to answer
START_TIMEOUT = 90


def ping(base_url: str | None) -> Any:
    """A pinged SDK client for ``base_url`` (None: ``DOCKER_HOST`` or the default socket), else None."""
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=60) if base_url else docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - no engine there
        return None


@contextlib.contextmanager
def docker_engine(root: Path) -> Iterator[tuple[Any, str]]:
    """``(client, DOCKER_HOST)`` of a working engine (started under ``root`` if need be), or skip."""
    pytest.importorskip("docker", reason="pip install 'spiker[docker]' (the Docker SDK)")
    client = ping(None)
    if client is not None:
        try:
            yield client, os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        finally:
            client.close()
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.skip("no running Docker engine, and dockerd cannot be started here "
                    f"({'not root' if dockerd else 'dockerd not installed: apt-get install docker.io'})")
    for sub in ("data", "exec"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    host = f"unix://{root / 'docker.sock'}"
    logfile = open(root / "dockerd.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none",
                             "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                             "--pidfile", str(root / "dockerd.pid"), "--host", host],
                            stdout=logfile, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (client := ping(host)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text(errors="replace")[-1200:]
                pytest.skip(f"dockerd did not start within {START_TIMEOUT} s (exit {proc.poll()}); log tail:\n{tail}")
            time.sleep(1)
        try:
            yield client, host
        finally:
            client.close()
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        logfile.close()
