"""Small helpers of the service tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.common.errors import error_detail


def drain(stream: Iterable[Any]) -> tuple[list[Any], Any]:
    """All progress events of a response stream and its one result."""
    progress, results = [], []
    for response in stream:
        if response.WhichOneof("event") == "progress":
            progress.append(response.progress)
        else:
            results.append(response.result)
    assert len(results) == 1, f"expected one result, got {len(results)}"
    return progress, results[0]


def expect_error(code: grpc.StatusCode, fn: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
    """Call (and for streams, drain) ``fn``; it must fail with ``code``. Returns the error detail."""
    with pytest.raises(grpc.RpcError) as info:
        result = fn(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
            list(result)
    err = info.value
    assert err.code() == code, f"{err.code()} != {code}: {err.details()}"
    return error_detail(err)


def wait_clean(runtime: Any, timeout: float = 15.0) -> None:
    """Wait until the runtime has no child processes and its work root is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runtime.active_pids and not any(Path(runtime.work_root).iterdir()):
            return
        time.sleep(0.1)
    raise AssertionError(f"not cleaned up: pids {runtime.active_pids}, "
                         f"work {list(Path(runtime.work_root).iterdir())}")


def pid_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False
