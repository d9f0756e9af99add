"""Issue 16, items 1 and 10: every job process is capped in memory and dies with its server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from spiker.store import LocalStore
from spiker_api.errors import RemoteError, describe_error
from spiker_services.common.child import job_memory_limit, parse_bytes
from spiker_services.common.runtime import Call, Runtime, drain
from tests.services import hardening_jobs

GIB = 1 << 30


class _Context:
    def add_callback(self, callback) -> bool:
        return True

    def is_active(self) -> bool:
        return True


def _call(tmp_path, job_memory: int | None) -> Call:
    return Call(_Context(), "test", Runtime(LocalStore(tmp_path / "store"), work_root=tmp_path / "work",
                                            job_memory=job_memory))


def test_memory_cap_is_configurable_with_a_default_below_host_ram() -> None:
    assert parse_bytes("4G") == 4 * GIB and parse_bytes("512MiB") == 512 << 20 and parse_bytes("off") == 0
    with pytest.raises(ValueError):
        parse_bytes("lots")
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < job_memory_limit({}) <= host // 2
    assert job_memory_limit({"SPIKER_JOB_MEMORY": "3G"}) == 3 * GIB


@pytest.mark.timeout(120)
def test_a_job_beyond_its_memory_cap_fails_resource_exhausted(tmp_path) -> None:
    call = _call(tmp_path, 3 * GIB)
    try:
        seen = drain(call.run_job(hardening_jobs.limits))
        assert seen["rlimit_as"] == 3 * GIB and seen["pdeathsig"] == signal.SIGKILL
        with pytest.raises(RemoteError) as info:
            drain(call.run_job(hardening_jobs.allocate, nbytes=4 * GIB))  # a zip bomb's arrays, say
        assert info.value.info.code == "RESOURCE_EXHAUSTED" and info.value.info.reason == "OUT_OF_MEMORY"
        assert drain(call.run_job(hardening_jobs.allocate, nbytes=64 << 20)) == 64 << 20
    finally:
        call.close()


def test_full_disk_is_resource_exhausted_not_unavailable(tmp_path) -> None:
    import errno

    from spiker.store import StoreError

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise StoreError("local store: cannot write 'x'") from exc
    except StoreError as exc:
        info = describe_error(exc)
    assert info.code == "RESOURCE_EXHAUSTED" and info.reason == "DISK_FULL"


def test_a_job_dies_with_its_parent() -> None:
    code = ("import os, sys, time\n"
            "from spiker_services.common.child import die_with_parent\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    die_with_parent()\n"
            "    time.sleep(120)\n"
            "    os._exit(0)\n"
            "print(pid, flush=True)\n"
            "time.sleep(0.5)\n"
            "os._exit(0)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         cwd=root)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_spiker_up_restarts_a_dead_child_with_back_off(tmp_path) -> None:
    """Item 10: the supervisor of ``spiker up`` notices an exit, logs it and restarts with growing delays."""
    from spiker_gateway.supervise import Supervisor

    now = [0.0]
    sup = Supervisor({"services": [sys.executable, "-c", "import sys; sys.exit(3)"],
                      "gateway": [sys.executable, "-c", "import time; time.sleep(60)"]},
                     dict(os.environ), initial_delay=1.0, max_delay=4.0, clock=lambda: now[0])
    sup.start()
    services, gateway = sup.children
    try:
        for _ in range(12):  # 12 simulated seconds
            services.proc and services.proc.wait(10)
            sup.poll()
            now[0] += 1.0
        assert services.last_exit == 3
        assert 2 <= services.restarts <= 6  # delays 1, 2, 4, 4 ... not a restart every poll
        assert gateway.restarts == 0 and gateway.proc.poll() is None
    finally:
        sup.stop(grace=5)
    assert gateway.proc.poll() is not None
