"""The job fork server: where every stage job process forks from, with the heavy imports done.

This module imports nothing heavy, so a process can start the server first thing
(:func:`start_job_server`) and let its preload (torch, spiker, scikit-learn, matplotlib:
seconds) run while the process itself is still importing.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

#: the module the fork server imports once (see spiker_services/common/preload.py)
PRELOAD = "spiker_services.common.preload"

_lock = threading.Lock()
_context: Any = None


def job_context() -> Any:
    """The multiprocessing context jobs run in: a fork server that has torch and spiker loaded.

    Forking from it is fast and safe (it has no gRPC threads); it starts on first use.
    """
    global _context
    with _lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([PRELOAD])
            _context = ctx
        return _context


def start_job_server() -> None:
    """Start the job fork server now; its preload then overlaps the rest of start-up."""
    from multiprocessing import forkserver

    job_context()
    forkserver.ensure_running()
