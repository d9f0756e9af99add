"""Plain-text lines of a run's events and stage records: the CLI's progress lines and the web
page's log both read them from here."""

from __future__ import annotations

from typing import Any


def stage_line(s: Any) -> str:
    """``train: succeeded in 5.4 s (cached); test_accuracy 0.222`` for a StageRecord."""
    from spiker.progress import fmt
    from spiker_gateway.client import stage_state_name

    state = stage_state_name(s.state)
    text = f"{s.name}: {state}" + (f" in {s.seconds:.1f} s" if state != "skipped" else "")
    text += " (cached)" if s.cached else ""
    if s.HasField("error") and s.error.message:
        text += f"; {s.error.message}"
    metrics = [f"{k} {fmt(v)}" for k, v in sorted(s.metrics.items()) if k != "seconds"][:6]
    return text + ("; " + ", ".join(metrics) if metrics else "")


def progress_text(p: Any) -> str:
    """The message of a ProgressEvent (its phase only when it has none), with ``n/N`` when counted."""
    text = p.message or p.phase
    count = f"{p.current}/{p.total}"
    if p.total > 0 and count not in text:
        text += f" ({count})"
    return text


def event_text(ev: Any) -> str | None:
    """The plain line of a RunEvent (``None`` for the summary): the CLI's lines and the web page's log."""
    from spiker_gateway.client import state_name

    kind = ev.WhichOneof("event")
    if kind == "state_change":
        c = ev.state_change
        queue = f" (queue position {c.queue_position})" if c.queue_position else ""
        return f"run {ev.run_id}: {c.message or state_name(c.state)}{queue}"
    if kind == "stage_started":
        s = ev.stage_started
        return f"{s.stage}: " + ("cache lookup" if s.attempt == 0 else "started" if s.attempt == 1
                                 else f"attempt {s.attempt} (retry)")
    if kind == "progress":
        return f"{ev.progress.stage}: {progress_text(ev.progress)}"
    if kind == "stage_finished":
        return stage_line(ev.stage_finished)
    return None
