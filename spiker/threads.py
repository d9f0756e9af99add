"""The CPU budget of a job: how many threads it may use, applied to torch, OpenMP and BLAS alike.

One policy for the whole project:

* **Budget** = usable cores // jobs running at once (at least 1). The cores are this process's
  CPU affinity (``SPIKER_CPUS`` overrides); a job process started by a service is given its
  budget in ``SPIKER_THREADS`` (:func:`apply` sets it), and :func:`budget` reads it back.
  Everything that starts processes (sweep workers, GHDL or vvp shards) asks :func:`workers`
  how many it may start: each such process is a job of one core.
* **Fixed threads for float training and evaluation**: torch's float reductions may split
  work differently at different thread counts, so a result could depend on the host. The
  trainer, its test passes and the optimizer's float reference pass therefore always run with
  :data:`TRAIN_THREADS` intra-op threads (1), whatever the budget; the budget can only lower a
  thread count, and 1 is the floor. Integer work (the golden model, GHDL, yosys) is exact at
  any thread count and uses the budget as it is.

:func:`limit` applies a thread count for a block and restores the previous one after it;
:func:`apply` sets it for the rest of a (job) process and in the environment of the processes
it starts (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ...).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: the budget given to a job process by whoever started it (a positive integer)
THREADS_ENV = "SPIKER_THREADS"
#: overrides the number of usable cores (e.g. a container's CPU limit)
CORES_ENV = "SPIKER_CPUS"
#: intra-op threads of float training and evaluation: fixed, so results do not depend on the host
TRAIN_THREADS = 1
#: environment variables that size the thread pools of OpenMP and the BLAS libraries
POOL_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
            "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _positive(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        log.warning("ignoring %s=%r: not a positive integer", name, raw)
        return None
    return value


def cores() -> int:
    """Usable cores: ``SPIKER_CPUS`` if set, else this process's CPU affinity."""
    override = _positive(CORES_ENV)
    if override is not None:
        return override
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def share(jobs: int, total: int | None = None) -> int:
    """Threads of each of ``jobs`` jobs running at once on ``total`` cores (default :func:`cores`)."""
    total = cores() if total is None else total
    return max(1, total // max(1, int(jobs)))


def budget() -> int:
    """This process's thread budget: ``SPIKER_THREADS`` (as its starter set it), else all cores."""
    given = _positive(THREADS_ENV)
    return cores() if given is None else min(given, cores())


def workers(requested: int, limit_to: int | None = None) -> int:
    """How many single-threaded worker processes to start for ``requested``: at most the budget."""
    cap = budget() if limit_to is None else limit_to
    return max(1, min(int(requested), cap))


def train_threads() -> int:
    """Intra-op threads of float training and evaluation (:data:`TRAIN_THREADS`, within the budget)."""
    return max(1, min(TRAIN_THREADS, budget()))


def child_env(threads: int) -> dict[str, str]:
    """Environment entries that size a child process's thread pools (and tell it its budget)."""
    value = str(max(1, int(threads)))
    return {**{name: value for name in POOL_ENV}, THREADS_ENV: value}


_blas_lock = threading.Lock()
_blas_limiter = None


def _limit_blas(threads: int) -> None:
    """Limit the BLAS/OpenMP pools already loaded in this process (threadpoolctl, if installed)."""
    global _blas_limiter
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables still cover libraries loaded later
        return
    with _blas_lock:
        _blas_limiter = threadpool_limits(limits=threads)


def _set_torch(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before the first inter-op work; later calls keep the first value
        pass


def apply(threads: int) -> int:
    """Give this process ``threads`` threads (at most its cores) from now on: torch (intra- and
    inter-op), OpenMP, BLAS, and the environment of the processes it starts. Returns the count."""
    threads = max(1, min(int(threads), cores()))
    os.environ.update(child_env(threads))
    _set_torch(threads)
    _limit_blas(threads)
    log.debug("thread budget %d", threads)
    return threads


@contextmanager
def limit(threads: int) -> Iterator[int]:
    """torch's intra-op threads set to ``threads`` for the block (restored after it)."""
    import torch

    threads = max(1, int(threads))
    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


class JobCounter:
    """Jobs running at once in one process (a server's calls and their job processes).

    A call that holds a slot counts as one job until it starts its job processes; then it
    counts as that many. :meth:`start` returns the threads each new job may use:
    ``cores // (jobs of the other calls + the new ones)``.
    """

    def __init__(self, total: int | None = None) -> None:
        self.total = cores() if total is None else max(1, int(total))
        self._lock = threading.Lock()
        self._jobs: dict[object, int] = {}

    def hold(self, owner: object) -> None:
        """``owner`` (a call) runs and counts as one job."""
        with self._lock:
            self._jobs.setdefault(owner, 1)

    def start(self, owner: object, n: int) -> int:
        """``owner`` starts ``n`` job processes; returns each one's thread budget."""
        with self._lock:
            others = sum(count for key, count in self._jobs.items() if key is not owner)
            self._jobs[owner] = max(1, int(n))
            return share(others + max(1, int(n)), self.total)

    def finish(self, owner: object) -> None:
        """``owner``'s job processes ended (it still holds its slot)."""
        with self._lock:
            if owner in self._jobs:
                self._jobs[owner] = 1

    def release(self, owner: object) -> None:
        """``owner`` ended."""
        with self._lock:
            self._jobs.pop(owner, None)

    @property
    def running(self) -> int:
        with self._lock:
            return sum(self._jobs.values())


__all__ = ["CORES_ENV", "TRAIN_THREADS", "THREADS_ENV", "JobCounter", "apply", "budget", "child_env", "cores",
           "limit", "share", "train_threads", "workers"]
