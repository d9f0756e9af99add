"""Fair sharing of one gateway between users: the run queue, per-user limits and a submit rate limit.

:class:`FairQueue` hands out queued runs round-robin between users, preferring the user with the
fewest running runs, so 100 runs from one user do not put another user's run 100th.
:class:`RateLimiter` is a token bucket per user. Neither knows what a run is: they see ids and
owners only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator


class QuotaExceeded(Exception):
    """A user's limit is reached; ``field`` names the limit (``queued_runs``, ``submit_rate`` ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class FairQueue:
    """Queued run ids per owner; :meth:`pop` takes the next run of the least-served eligible owner.

    Not thread-safe on its own: the run manager calls it under its lock.
    """

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[str]] = OrderedDict()  # owner -> run ids, oldest first
        self._owner: dict[str, str] = {}
        #: owner -> monotonic counter of its last start (round-robin among equals)
        self._last_start: dict[str, int] = {}
        self._clock = 0

    def __len__(self) -> int:
        return len(self._owner)

    def __bool__(self) -> bool:
        return bool(self._owner)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._owner

    def __iter__(self) -> Iterator[str]:
        return iter(self.order({}))

    def append(self, run_id: str, owner: str) -> None:
        self._queues.setdefault(owner, deque()).append(run_id)
        self._owner[run_id] = owner

    def remove(self, run_id: str) -> None:
        owner = self._owner.pop(run_id)
        queue = self._queues[owner]
        queue.remove(run_id)
        if not queue:
            del self._queues[owner]

    def queued_of(self, owner: str) -> int:
        return len(self._queues.get(owner, ()))

    def _pick(self, running: dict[str, int], eligible: Callable[[str], bool]) -> str | None:
        owners = [o for o in self._queues if eligible(o)]
        if not owners:
            return None
        return min(owners, key=lambda o: (running.get(o, 0), self._last_start.get(o, -1)))

    def pop(self, running: dict[str, int], eligible: Callable[[str], bool] = lambda _o: True) -> str | None:
        """The next run to start given each owner's running count; None if no owner is eligible."""
        owner = self._pick(running, eligible)
        if owner is None:
            return None
        run_id = self._queues[owner].popleft()
        if not self._queues[owner]:
            del self._queues[owner]
        del self._owner[run_id]
        self._clock += 1
        self._last_start[owner] = self._clock
        return run_id

    def order(self, running: dict[str, int]) -> list[str]:
        """The order in which the queued runs would start if nothing else changed."""
        queues = OrderedDict((o, deque(q)) for o, q in self._queues.items())
        counts = dict(running)
        last = dict(self._last_start)
        clock = self._clock
        out: list[str] = []
        while queues:
            owner = min(queues, key=lambda o: (counts.get(o, 0), last.get(o, -1)))
            out.append(queues[owner].popleft())
            if not queues[owner]:
                del queues[owner]
            counts[owner] = counts.get(owner, 0) + 1
            clock += 1
            last[owner] = clock
        return out

    def position(self, run_id: str, running: dict[str, int]) -> int:
        """1 = next to start; 0 when not queued."""
        if run_id not in self._owner:
            return 0
        return self.order(running).index(run_id) + 1


class RateLimiter:
    """A token bucket per key: ``rate`` tokens per second, at most ``burst`` saved up (rate 0: off)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token; returns 0.0, or the seconds until one is available (nothing taken)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
