"""Timing on a shared machine, for the benches: interleaved repeats, median and spread, and the load.

One timing on a machine that other jobs share says little. :func:`interleaved` runs the sides of
a comparison in alternating order (A B, B A, ...) so that a change of load lands on both, wall and
CPU seconds each; :func:`spread` prints ``median [min-max]``; :func:`measured_load` says how
many cores the other processes kept busy meanwhile (from /proc/stat) and the load average.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Runs:
    """Wall and CPU seconds of one side over the repeats."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def _busy_jiffies() -> tuple[int, int] | None:
    """(non-idle, total) CPU jiffies of the whole machine so far, or None without /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


@dataclass
class Load:
    """The machine's load during a block: cores kept busy by processes other than this one and the
    children it waited for, and the load average."""

    others: float | None = None  # average cores busy with other processes' work
    cores: int = 0
    loadavg: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    def __str__(self) -> str:
        others = "n/a" if self.others is None else f"{self.others:.1f}"
        return f"others busy {others}/{self.cores} cores, loadavg {self.loadavg[0]:.1f}->{self.loadavg[1]:.1f}"


def adopt_orphans() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A child's own children that outlive it (a fork server and the jobs it ran) are then handed to
    this process instead of init, and their CPU time reaches :func:`cpu_seconds` once
    :func:`reap_orphans` has waited for them. Returns False where that is not possible.
    """
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout: float = 10.0) -> int:
    """Wait (at most ``timeout`` s) for every child process of this one to end, reaping it; returns how
    many were reaped. Call it only when no child is meant to outlive the call."""
    deadline, reaped = time.monotonic() + timeout, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left
            return reaped
        if pid:
            reaped += 1
        elif time.monotonic() > deadline:
            return reaped
        else:
            time.sleep(0.02)


def cpu_seconds() -> float:
    """CPU seconds of this process and of the child processes it has waited for (``spiker run``, GHDL)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def measured_load() -> Iterator[Load]:
    """Yields a :class:`Load` filled in when the block ends."""
    load = Load(cores=os.cpu_count() or 1)
    before, own, wall, avg = _busy_jiffies(), cpu_seconds(), time.perf_counter(), os.getloadavg()[0]
    yield load
    after, own, wall = _busy_jiffies(), cpu_seconds() - own, time.perf_counter() - wall
    load.loadavg = (avg, os.getloadavg()[0])
    if before is not None and after is not None and after[1] > before[1]:
        busy_cores = (after[0] - before[0]) / (after[1] - before[1]) * load.cores
        load.others = max(0.0, busy_cores - own / wall)


def interleaved(sides: dict[str, Callable[[], object]], repeats: int, warm_up: bool = True) -> dict[str, Runs]:
    """Each side run once to warm up (unless ``warm_up=False``: the first training in a process pays
    one-off kernel and allocator set-up, ~1.5 CPU s here), then ``repeats`` times in alternating
    order; wall and CPU (:func:`cpu_seconds`) seconds per run."""
    if warm_up:
        for run in sides.values():
            run()
    runs = {name: Runs() for name in sides}
    order = list(sides)
    for repeat in range(repeats):
        for name in (order if repeat % 2 == 0 else order[::-1]):
            wall, cpu = time.perf_counter(), cpu_seconds()
            sides[name]()
            runs[name].wall.append(time.perf_counter() - wall)
            runs[name].cpu.append(cpu_seconds() - cpu)
    return runs


def spread(values: list[float], unit: str = "") -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def ratios(ref: Runs, ours: Runs) -> tuple[list[float], list[float]]:
    """Per-repeat ratios ref / ours (higher: ours faster), wall and CPU."""
    return ([r / o for r, o in zip(ref.wall, ours.wall)], [r / o for r, o in zip(ref.cpu, ours.cpu)])
