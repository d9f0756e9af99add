"""Inside a job's child process: progress reporting and the entry point the runner forks.

A job function runs in its own process group (so GHDL and other grandchildren die with it),
with ``TMPDIR`` inside the call's work folder (so nothing outlives the call), and talks to the
servicer through a pipe: ``("progress", {...})`` events, then ``("result", value)`` or
``("error", ErrorInfo dict)``. Log records of ``spiker.*`` loggers become progress events.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from services.common.errors import describe_error

_conn: Any = None
_lock = threading.Lock()


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


def child_main(conn: Any, target: str, kwargs: dict[str, Any], workdir: str) -> None:
    """Run ``target`` (``"module:function"``) with ``kwargs`` and send its result or error back."""
    global _conn
    _conn = conn
    try:
        os.setpgrp()  # our own process group: the servicer kills it as a whole
    except OSError:
        pass
    tmp = Path(workdir) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_ProgressHandler(logging.INFO))
    try:
        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        result = fn(**kwargs)
        _send("result", result)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the servicer
        _send("error", describe_error(exc).to_dict())
    finally:
        conn.close()
