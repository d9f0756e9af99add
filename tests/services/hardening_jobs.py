"""Job functions for tests/gateway/test_hardening_jobs.py (importable by the job fork server)."""

import ctypes
import resource

import numpy as np


def limits(workdir: str) -> dict[str, int]:
    """The job's address-space cap and parent-death signal, as the job process sees them."""
    sig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    return {"rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0], "pdeathsig": sig.value}


def allocate(workdir: str, nbytes: int) -> int:
    """Map ``nbytes`` (untouched pages: free without a cap, refused with one)."""
    return int(np.empty(nbytes, dtype=np.uint8).nbytes)
