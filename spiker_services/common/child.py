"""Inside a job's child process: progress reporting and the entry point the runner forks.

A job function runs in its own process group (so GHDL and other grandchildren die with it),
with ``TMPDIR`` inside the call's work folder (so nothing outlives the call), and talks to the
servicer through a pipe: ``("progress", {...})`` events, then ``("result", value)`` or
``("error", ErrorInfo dict)``. Log records of ``spiker.*`` loggers become progress events.
Every job is capped in memory (``RLIMIT_AS``, :func:`job_memory_limit`) and dies with its parent
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import resource
import signal
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spiker_api.errors import describe_error

log = logging.getLogger(__name__)

_conn: Any = None
_lock = threading.Lock()

#: a job's address-space cap in bytes (``4G``, ``512M`` or plain bytes; ``0`` or ``off``: none)
JOB_MEMORY_ENV = "SPIKER_JOB_MEMORY"
#: default cap: this fraction of the host's physical memory, per job
DEFAULT_MEMORY_FRACTION = 0.4
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_PR_SET_PDEATHSIG = 1


def parse_bytes(text: str, what: str = JOB_MEMORY_ENV) -> int:
    """``"4G"`` -> 4 GiB, ``"512M"``, ``"123"`` (bytes); ``"0"``/``"off"`` -> 0 (no cap)."""
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    if raw in ("0", "OFF", "NONE"):
        return 0
    number, suffix = (raw[:-1], raw[-1]) if raw and raw[-1] in _SUFFIXES else (raw, "")
    try:
        value = float(number) * _SUFFIXES[suffix]
    except ValueError:
        raise ValueError(f"{what}: expected bytes such as 4G, 512M or 1048576, got {text!r}") from None
    if value < 0 or value != value:
        raise ValueError(f"{what}: must be >= 0, got {text!r}")
    return int(value)


def host_memory() -> int:
    """Physical memory of the host in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def job_memory_limit(env: Mapping[str, str] | None = None) -> int:
    """The address-space cap of one job: ``$SPIKER_JOB_MEMORY`` or 40 % of the host's memory (0: none)."""
    env = os.environ if env is None else env
    raw = env.get(JOB_MEMORY_ENV, "").strip()
    if raw:
        return parse_bytes(raw)
    return int(host_memory() * DEFAULT_MEMORY_FRACTION)


def limit_memory(limit: int) -> None:
    """Cap this process's address space at ``limit`` bytes (never raising a lower existing cap).

    An allocation beyond it fails (``MemoryError``, reported as ``RESOURCE_EXHAUSTED``) instead
    of driving the host into swap or the OOM killer.
    """
    if limit <= 0:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a job must not outlive its server)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the servicer still kills the group on cancel
        return
    if os.getppid() == 1:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


def _send(kind: str, payload: Any) -> None:
    if _conn is None:
        return
    with _lock:
        _conn.send((kind, payload))


def report(phase: str, message: str = "", current: int = 0, total: int = 0,
           metrics: dict[str, float] | None = None) -> None:
    """Send one progress event to the servicer (a no-op outside a job's child process)."""
    _send("progress", {"phase": phase, "message": message, "current": int(current), "total": int(total),
                       "metrics": {k: float(v) for k, v in (metrics or {}).items()}})


class _ProgressHandler(logging.Handler):
    """Forwards INFO+ records of ``spiker.*`` loggers as progress events."""

    def emit(self, record: logging.LogRecord) -> None:
        if not (record.name == "spiker" or record.name.startswith("spiker.")):
            return
        try:
            report("log", record.getMessage().splitlines()[0][:500])
        except Exception:  # noqa: BLE001 - progress must never break the job
            self.handleError(record)


def child_main(conn: Any, target: str, kwargs: dict[str, Any], workdir: str, memory_limit: int = 0) -> None:
    """Run ``target`` (``"module:function"``) with ``kwargs`` and send its result or error back.

    The job dies with its parent and may map at most ``memory_limit`` bytes (0: no cap).
    """
    global _conn
    _conn = conn
    try:
        os.setpgrp()  # our own process group: the servicer kills it as a whole
    except OSError:
        pass
    die_with_parent()
    try:
        limit_memory(memory_limit)
    except (OSError, ValueError) as exc:
        log.warning("job memory cap of %d bytes not set: %s", memory_limit, exc)
    tmp = Path(workdir) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_ProgressHandler(logging.INFO))
    from spiker.data.datasets import RandomSplitWarning

    # the submitter was told (spiker run/submit read the .npz first); every job would repeat it
    warnings.filterwarnings("ignore", category=RandomSplitWarning)
    try:
        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        result = fn(**kwargs)
        _send("result", result)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the servicer
        _send("error", describe_error(exc).to_dict())
    finally:
        conn.close()
