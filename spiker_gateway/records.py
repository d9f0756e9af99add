"""Run records: ids and store keys, the record as a ``Run`` message, and the in-memory handle of
a run (its record, its event log for watchers, its cancellable call slot).

A run record is a JSON document at ``runs/<run-id>/record.json``; :class:`~spiker_gateway.runs.RunManager`
writes it, everything that shows a run to a client reads it through here.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
from typing import Any

from spiker.flow.spec import FlowSpec, parse_flow_spec
from spiker_api.v1 import common_pb2, gateway_pb2
from spiker_gateway import stages as st
from spiker_gateway.index import FINAL_STATES
from spiker_gateway.report import run_prefix

FINAL = FINAL_STATES
RUN_ID_RE = re.compile(r"r-\d{8}-\d{6}-[0-9a-f]{8}")
RUN_STATES = {"queued": gateway_pb2.RUN_STATE_QUEUED, "running": gateway_pb2.RUN_STATE_RUNNING,
              "succeeded": gateway_pb2.RUN_STATE_SUCCEEDED, "failed": gateway_pb2.RUN_STATE_FAILED,
              "cancelled": gateway_pb2.RUN_STATE_CANCELLED}
STAGE_STATES = {"pending": gateway_pb2.STAGE_STATE_PENDING, "running": gateway_pb2.STAGE_STATE_RUNNING,
                "succeeded": gateway_pb2.STAGE_STATE_SUCCEEDED, "failed": gateway_pb2.STAGE_STATE_FAILED,
                "cancelled": gateway_pb2.STAGE_STATE_CANCELLED, "skipped": gateway_pb2.STAGE_STATE_SKIPPED}


#: an absolute server path (a store root, a job's work folder): never shown to a client
_PATH_RE = re.compile(r"(?:file://)?(?:/[A-Za-z0-9._@+=:,-]+){2,}")


def scrub_paths(text: str) -> str:
    """``text`` with absolute server paths replaced by their last segment (``.../name``)."""
    return _PATH_RE.sub(lambda m: ".../" + m.group(0).rsplit("/", 1)[-1], text)


def client_error(err: dict[str, Any] | None) -> dict[str, Any] | None:
    """An error record as a client may see it (no server paths in its message)."""
    if not err:
        return err
    return {**err, "message": scrub_paths(str(err.get("message", "")))}


class RunNotFound(Exception):
    """No run with this id for this user (another user's run is reported the same way)."""


def new_run_id() -> str:
    """``r-YYYYmmdd-HHMMSS-<8 hex>``: sortable by creation time, unguessable suffix."""
    return time.strftime("r-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(4)


def record_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}/record.json"


def _error_proto(err: dict[str, Any] | None) -> common_pb2.ErrorDetail | None:
    if not err:
        return None
    return common_pb2.ErrorDetail(field=err.get("field", ""), reason=err.get("reason", ""),
                                  message=err.get("message", ""))


def stage_proto(s: dict[str, Any]) -> gateway_pb2.StageRecord:
    """The message of a stage record."""
    msg = gateway_pb2.StageRecord(name=s["name"], state=STAGE_STATES.get(s["state"], 0), cached=bool(s.get("cached")),
                                  seconds=float(s.get("seconds", 0.0)), attempts=int(s.get("attempts", 0)),
                                  cache_key=s.get("cache_key", ""),
                                  compute_seconds=float(s.get("compute_seconds", 0.0)))
    for name, ref in (s.get("inputs") or {}).items():
        msg.inputs[name].CopyFrom(st.ref_msg(ref))
    for name, ref in (s.get("outputs") or {}).items():
        msg.outputs[name].CopyFrom(st.ref_msg(ref))
    for name, value in (s.get("metrics") or {}).items():
        msg.metrics[name] = float(value)
    err = _error_proto(s.get("error"))
    if err is not None:
        msg.error.CopyFrom(err)
    return msg


def run_proto(rec: dict[str, Any], full: bool = True, queue_position: int = 0) -> gateway_pb2.Run:
    """The message of a run record (``full``: with spec and report JSON)."""
    msg = gateway_pb2.Run(run_id=rec["run_id"], name=rec.get("name", ""), owner=rec["owner"],
                          state=RUN_STATES[rec["state"]], created_at=rec.get("created_at", 0.0),
                          started_at=rec.get("started_at") or 0.0, finished_at=rec.get("finished_at") or 0.0,
                          queue_position=queue_position, no_cache=bool(rec.get("no_cache")))
    msg.stages.extend(stage_proto(s) for s in rec.get("stages", []))
    err = _error_proto(rec.get("error"))
    if err is not None:
        msg.error.CopyFrom(err)
    for name, key in (rec.get("artifacts") or {}).items():
        msg.artifacts[name] = key
    if full:
        msg.spec_json = json.dumps(rec.get("spec", {}), sort_keys=True)
        if rec.get("report") is not None:
            msg.report_json = json.dumps(rec["report"], sort_keys=True)
    return msg


class RunHandle:
    """A run in memory: its record, its event log (for watchers) and its cancellable call slot."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.events: list[gateway_pb2.RunEvent] = []
        self.cond = threading.Condition()
        self.slot = st.CallSlot()
        self._spec: FlowSpec | None = None
        #: the summary event was emitted (watchers stop after it)
        self.done = False
        #: this gateway lost the run's lease: another gateway runs it now (this one writes nothing more)
        self.lost = False
        #: asyncio watchers: (loop, event) pairs set on every new event
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def spec(self) -> FlowSpec:
        if self._spec is None:
            self._spec = parse_flow_spec(self.record["spec"])
        return self._spec

    @property
    def final(self) -> bool:
        return self.record["state"] in FINAL

    def emit(self, **event: Any) -> None:
        msg = gateway_pb2.RunEvent(run_id=self.run_id, time=time.time(), **event)
        with self.cond:
            self.events.append(msg)
            self.done = self.done or "summary" in event
            self.cond.notify_all()
            waiters = list(self._waiters)
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # that loop is closed: its watcher is gone
                pass

    def subscribe(self) -> asyncio.Event:
        """An asyncio.Event (of the running loop) that is set whenever an event is emitted."""
        flag = asyncio.Event()
        with self.cond:
            self._waiters.add((asyncio.get_running_loop(), flag))
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        with self.cond:
            self._waiters = {w for w in self._waiters if w[1] is not flag}
