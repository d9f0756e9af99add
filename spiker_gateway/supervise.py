"""Keep ``spiker up``'s child processes (stage services, gateway) running: restart with back-off.

A child that exits is logged and started again after 1, 2, 4 ... seconds (at most ``max_delay``);
the delay starts over once a child has stayed up for ``healthy_after`` seconds. Stopping sends
SIGTERM to every child (the gateway first) and SIGKILL to those still alive after ``grace``.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Child:
    """One supervised command and its current process."""

    name: str
    cmd: Sequence[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    failures: int = 0  # consecutive quick exits (sets the back-off)
    next_start: float = 0.0
    last_exit: int | None = None  # exit status of the latest exit


class Supervisor:
    """Starts ``children`` (name -> argv) with ``env`` and restarts any that exit, until :meth:`stop`."""

    def __init__(self, children: Mapping[str, Sequence[str]], env: Mapping[str, str],
                 initial_delay: float = 1.0, max_delay: float = 30.0, healthy_after: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children = [Child(name, list(cmd)) for name, cmd in children.items()]
        self.env = dict(env)
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self._clock = clock

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.cmd, env=self.env)
        child.started = self._clock()
        log.info("spiker up: %s started (pid %d)", child.name, child.proc.pid)

    def start(self) -> None:
        for child in self.children:
            self._start(child)

    def poll(self) -> None:
        """Notice exited children and restart those whose back-off has passed."""
        now = self._clock()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                child.last_exit = code
                up = now - child.started
                child.failures = 0 if up >= self.healthy_after else child.failures + 1
                delay = min(self.max_delay, self.initial_delay * 2 ** max(0, child.failures - 1))
                log.warning("spiker up: %s (pid %d) exited with %s after %.0fs; restarting in %.0fs",
                            child.name, child.proc.pid, code, up, delay)
                child.proc = None
                child.next_start = now + delay
            if child.proc is None and now >= child.next_start:
                child.restarts += 1
                self._start(child)

    def run(self, stopping: Callable[[], bool], interval: float = 0.5) -> None:
        """Supervise until ``stopping()`` is true."""
        while not stopping():
            self.poll()
            time.sleep(interval)

    def stop(self, grace: float = 20.0) -> None:
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(grace)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
