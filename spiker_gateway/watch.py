"""Following a run from the command line: its events as plain lines or progress bars, and the
summary of how it ended (``spiker run``, ``spiker submit --watch``, ``spiker watch``)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from spiker_gateway.events import event_text, progress_text, stage_line


class LineView:
    """A run's events as plain lines on stderr (no redraws): for logs, pipes and CI.

    While a stage runs silently, a heartbeat line is written every ``spiker.progress.INTERVAL`` s.
    """

    def __init__(self, stream: Any = None) -> None:
        import threading

        from spiker import progress

        self.stream = stream or sys.stderr
        self.interval = progress.INTERVAL
        self.running: dict[str, float] = {}
        self.last_line = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        with self._lock:
            print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)
            self.last_line = time.monotonic()

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                quiet = time.monotonic() - self.last_line >= self.interval
                stages = dict(self.running)
            if quiet and stages:
                now = time.monotonic()
                self.write(", ".join(f"{name}: running, {now - t0:.0f} s" for name, t0 in stages.items()))

    def event(self, ev: Any) -> None:
        kind = ev.WhichOneof("event")
        if kind == "stage_started":
            self.running.setdefault(ev.stage_started.stage, time.monotonic())
        elif kind == "stage_finished":
            self.running.pop(ev.stage_finished.name, None)
        text = event_text(ev)
        if text is not None:
            self.write(text)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class BarView:
    """One tqdm bar per stage (on a terminal), its postfix the latest progress message."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def _bar(self, stage: str) -> Any:
        from tqdm import tqdm

        if stage not in self.bars:
            self.bars[stage] = tqdm(desc=f"{stage:9s}", total=1, unit="step", leave=True, file=sys.stderr,
                                    bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}]{postfix}")
        return self.bars[stage]

    def event(self, ev: Any) -> None:
        kind = ev.WhichOneof("event")
        if kind == "stage_started":
            self._bar(ev.stage_started.stage).set_postfix_str(
                "cache lookup" if ev.stage_started.attempt == 0 else f"attempt {ev.stage_started.attempt}")
        elif kind == "progress":
            p = ev.progress
            bar = self._bar(p.stage)
            if p.total > 0:
                bar.total = p.total
                bar.n = min(p.current, p.total)
            text = progress_text(p)
            bar.set_postfix_str(text if len(text) <= 70 else text[:67] + "...")
        elif kind == "stage_finished":
            s = ev.stage_finished
            bar = self._bar(s.name)
            bar.n = bar.total
            bar.set_postfix_str(stage_line(s).partition(": ")[2][:70])
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class _NoView:
    def event(self, ev: Any) -> None:
        pass

    def close(self) -> None:
        pass


def make_view(progress: bool = True) -> Any:
    """Bars on a terminal, plain lines elsewhere, nothing when ``progress`` is off (``-q``)."""
    from spiker import progress as policy

    if not progress or policy.mode() == "off":
        return _NoView()
    return BarView() if policy.use_bars() else LineView()


def follow(client: Any, run_id: str, progress: bool = True) -> Any:
    """Show a run's events until it ends; returns the final Run."""
    view = make_view(progress)
    try:
        for ev in client.watch(run_id):
            view.event(ev)
            if ev.WhichOneof("event") == "summary":
                return ev.summary
    finally:
        view.close()
    return client.get(run_id)


def print_summary(run: Any) -> int:
    """Print the run's outcome and report (rounded; rows without numbers left out); the exit code
    (0: succeeded with 0 mismatches, else 1)."""
    from spiker.progress import fmt
    from spiker_gateway.client import state_name
    from spiker_gateway.report import RESOURCE_KEYS, RunReport

    state = state_name(run.state)
    print(f"run {run.run_id} ({run.name}): {state}")
    if run.HasField("error") and run.error.message:
        field = f" [{run.error.field}]" if run.error.field else ""
        print(f"error{field}: {run.error.message}")
    if not run.report_json:
        return 1
    r = RunReport.from_dict(json.loads(run.report_json))
    counts = r.accuracy_samples or {}
    accuracies = [f"{label} {fmt(value)}" + (f" on {counts[kind]} {what}" if counts.get(kind) else "")
                  for label, value, kind, what in (("float", r.float_accuracy, "float", "test samples"),
                                                   ("quantized", r.quant_accuracy, "quant", "test samples"),
                                                   ("hardware", r.hw_accuracy, "hardware", "simulated samples"))
                  if value is not None]
    if accuracies:
        print("accuracy: " + ", ".join(accuracies))
    params = r.optim_params or {}
    print(f"mismatches: {r.mismatches} on {r.samples} samples"
          + (f"; optim_params {', '.join(f'{k}={v}' for k, v in sorted(params.items()))}" if params else ""))
    if r.cycles_mean is not None:
        e = r.events_per_cycle or 1
        bound = f" (one-event bound {fmt(r.bound_mean, 1)})" if r.bound_mean is not None else ""
        if r.bound_events_mean is not None and e > 1:
            bound = (f" (bound at {e} events/cycle {fmt(r.bound_events_mean, 1)}, one-event "
                     f"{fmt(r.bound_mean, 1)})")
        print(f"cycles/inference: mean {fmt(r.cycles_mean, 1)}{bound}")
    res = {k: v for k, v in (r.resources or {}).items() if k in RESOURCE_KEYS and v is not None}
    est = {k: v for k, v in (r.resources_estimated or {}).items() if v is not None}
    if (r.resources or {}).get("method") == "fast":  # hdl.resources: fast — no synthesis ran
        print(f"resources ({r.resources.get('note', 'fast')}): " + ", ".join(
            f"{k.upper()} {fmt(res[k], 1)}" for k in RESOURCE_KEYS if k in res))
    elif res or est:  # the cost model's estimate beside yosys' count (when synthesis ran)
        print("resources (estimated / measured): " + ", ".join(
            f"{k.upper()} {fmt(est.get(k), 1) if k in est else '-'} / {fmt(res.get(k), 1) if k in res else '-'}"
            for k in RESOURCE_KEYS if k in res or k in est))
    if r.sweep:
        print(f"sweep: {r.sweep['configs']} configs, {r.sweep['feasible']} feasible")
    sel = r.selection or {}
    if sel.get("reason"):
        print(f"selected: {sel['reason']}")
    from spiker_gateway.stages import STAGES

    print("stages: " + ", ".join(f"{n} {r.stages[n]['seconds']:.1f}s"
                                 f"{' (cached)' if r.stages[n]['cached'] else ''}"
                                 f"{' (skipped)' if r.stages[n]['state'] == 'skipped' else ''}"
                                 for n in STAGES if n in r.stages))
    return 0 if state == "succeeded" and r.mismatches == 0 else 1
