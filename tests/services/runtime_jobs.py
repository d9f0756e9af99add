"""Job functions for tests/services/test_runtime.py (importable by the job fork server)."""

import os
import time


def echo(workdir: str, value: int) -> int:
    return value * 2


def fail(workdir: str) -> None:
    raise ValueError("no good value here")


def die(workdir: str, hold_pipe: bool) -> None:
    if hold_pipe:
        pid = os.fork()
        if pid == 0:  # a grandchild keeps the result pipe open
            time.sleep(3600)  # without the liveness check, run_jobs would wait for this
            os._exit(0)
        with open(os.path.join(workdir, "grandchild.pid"), "w") as f:
            f.write(str(pid))
    os._exit(3)
