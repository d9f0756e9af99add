"""The one progress policy of spiker: a redrawn bar on a terminal, plain lines anywhere else.

On a TTY (stderr) a task shows a tqdm bar. Elsewhere (CI logs, ``kubectl logs``, ``> log 2>&1``,
a service's child process) nothing is redrawn: a task logs one plain line per event through the
``spiker.progress`` logger (so ``-q`` silences it and a service forwards it as a progress event),
at most one every :data:`INTERVAL` seconds plus its last. Long silent steps (synthesis, GHDL)
run inside :func:`heartbeat`, which logs a line every :data:`INTERVAL` seconds while they run.

``SPIKER_PROGRESS=bar|lines|off`` (or :func:`configure`) overrides the TTY test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

log = logging.getLogger("spiker.progress")

ENV_VAR = "SPIKER_PROGRESS"
MODES = ("auto", "bar", "lines", "off")
#: seconds between two plain progress lines of one task, and between heartbeats
INTERVAL = 5.0

_mode = "auto"


def configure(mode: str | None = None, interval: float | None = None) -> None:
    """Set the mode (``auto``: bars only on a TTY; ``bar``; ``lines``; ``off``) and the line interval."""
    global _mode, INTERVAL
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        _mode = mode
    if interval is not None:
        INTERVAL = float(interval)


def mode(stream: TextIO | None = None) -> str:
    """The effective mode for ``stream`` (default stderr): ``bar``, ``lines`` or ``off``."""
    chosen = _mode if _mode != "auto" else os.environ.get(ENV_VAR, "auto")
    if chosen in ("bar", "lines", "off"):
        return chosen
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def use_bars(stream: TextIO | None = None) -> bool:
    """True when progress should be drawn as bars (stderr is a terminal, or forced)."""
    return mode(stream) == "bar"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a summary line: floats rounded to ``digits`` (whole ones as integers), ``n/a`` for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.{digits}f}"  # counts stay counts
    return str(value)


class Progress:
    """A counted task: ``update()`` per unit done, ``set_postfix(loss=...)`` for its numbers.

    ``enabled=False`` shows nothing. As plain lines it logs ``desc: n/total unit k=v ...``, at
    most one every :data:`INTERVAL` seconds and the final count on :meth:`close` (unless
    ``leave=False`` and a line was already logged for the last unit).
    """

    def __init__(self, iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None,
                 unit: str = "it", enabled: bool = True, leave: bool = True) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.desc, self.total, self.unit, self.leave = desc, total, unit, leave
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._mode = mode() if enabled else "off"
        self._bar: Any = None
        self._last_line = time.monotonic()
        self._logged_n = 0
        self._closed = False
        if self._mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("Progress was created without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The plain line of the current state."""
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        extra = " ".join(f"{k} {fmt(v)}" for k, v in self.postfix.items())
        return f"{self.desc}: {count} {self.unit}" + (f" {extra}" if extra else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._mode == "lines" and time.monotonic() - self._last_line >= INTERVAL:
            self._log()

    def set_postfix(self, **values: Any) -> None:
        self.postfix.update(values)
        if self._bar is not None:
            self._bar.set_postfix_str(" ".join(f"{k} {fmt(v)}" for k, v in self.postfix.items()), refresh=False)

    def _log(self) -> None:
        log.info("%s", self.line())
        self._last_line = time.monotonic()
        self._logged_n = self.n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._mode == "lines" and self.leave and self._logged_n != self.n:
            self._log()


def progress(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
             enabled: bool = True, leave: bool = True) -> Progress:
    """A :class:`Progress` (iterate over it to wrap ``iterable``)."""
    return Progress(iterable, desc=desc, total=total, unit=unit, enabled=enabled, leave=leave)


@contextlib.contextmanager
def heartbeat(what: str, enabled: bool = True, interval: float | None = None) -> Iterator[None]:
    """Log ``what: running, N s`` every ``interval`` seconds (default :data:`INTERVAL`) while the
    block runs, and ``what: done in N s`` after it if it ran that long (nothing if disabled)."""
    if not enabled or mode() == "off":
        yield
        return
    every = INTERVAL if interval is None else interval
    start = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            log.info("%s: running, %.0f s", what, time.monotonic() - start)

    thread = threading.Thread(target=beat, name=f"heartbeat-{what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        seconds = time.monotonic() - start
        if seconds >= every:
            log.info("%s: done in %.0f s", what, seconds)


__all__ = ["ENV_VAR", "INTERVAL", "MODES", "Progress", "configure", "fmt", "heartbeat", "mode", "progress",
           "use_bars"]
