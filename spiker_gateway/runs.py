"""The run manager: the fair run queue, the records it keeps, and the thread that walks a run
through its stages.

A run record (spiker_gateway/records.py) is a JSON document at ``runs/<run-id>/record.json`` (overwritten on every
change): spec, owner, state, per-stage state/inputs/outputs/metrics/timings/cached flag, errors,
report. The run index (spiker_gateway/index.py) lists each user's runs and the final ones, so on start
the manager reads only the records of unfinished runs: those are queued again (oldest first) and
resume after their last finished stage. Only active runs (and a few recently finished ones, for
their watchers) stay in memory; others are read from the store on demand.

A final state is shown to clients only once the store has it: a run never shows FAILED and
then comes back SUCCEEDED after a store outage and a restart. The queue is fair between users
(spiker_gateway/fairness.py), with per-user limits on queued and running runs and a submit rate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import grpc

from spiker.flow.spec import FlowSpec
from spiker.store import ArtifactNotFound, ArtifactStore, StoreError, StoreUnavailable
from spiker_api.v1 import gateway_pb2
from spiker_gateway import stages as st
from spiker_gateway.cache import StageCache, cache_key
from spiker_gateway.fairness import FairQueue, QuotaExceeded, RateLimiter
from spiker_gateway.index import RunIndex, valid_page_token
from spiker_gateway.lease import DEFAULT_TTL, Leases
from spiker_gateway.records import (
    FINAL,
    RUN_STATES,
    RunHandle,
    RunNotFound,
    client_error,
    new_run_id,
    record_key,
    run_proto,
    stage_proto,
)
from spiker_gateway.report import build_report
from spiker_gateway.validate import Limits

log = logging.getLogger(__name__)

#: retries of a record write while the store is unavailable (within the policy's time budget)
STORE_RETRIES = 1_000_000
#: finished runs kept in memory for their watchers (the rest are read from the store on demand)
RECENT_RUNS = 64
#: ListRuns page size when the request gives none, and the largest page
PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
#: seconds a CancelRun waits for the run's final state before it answers with the current one
CANCEL_WAIT_S = 5.0
#: seconds between reads of the record of a run another gateway runs, for its watchers
FOLLOW_POLL_S = 2.0
#: stage states after which a stage does not change in this run
STAGE_FINAL = ("succeeded", "failed", "cancelled", "skipped")
#: the log line of a run taken from the queue: run id, runs now running here, at most at once
STARTED_LOG = "run %s: started (%d of %d at once)"


class RunManager:
    """Queue, run, cancel, list and resume runs; ``max_concurrent_runs`` run at once, fair between users."""

    def __init__(self, store: ArtifactStore, clients: st.StageClients, limits: Limits | None = None,
                 policy: st.RetryPolicy | None = None, lease_ttl: float = DEFAULT_TTL) -> None:
        self.store = store
        #: one runner per run: a run runs only under this gateway's lease on it
        self.leases = Leases(store, ttl=lease_ttl)
        self._resume = False
        self._lease_thread: threading.Thread | None = None
        self.clients = clients
        self.limits = limits or Limits()
        self.policy = policy or st.RetryPolicy()
        self.cache = StageCache(store)
        self.index = RunIndex(store)
        #: active runs (queued or running) by id; finished ones move to ``_recent``
        self._runs: dict[str, RunHandle] = {}
        self._recent: OrderedDict[str, RunHandle] = OrderedDict()
        self._pending = FairQueue()
        self._rate = RateLimiter(self.limits.submit_rate_per_minute / 60.0, self.limits.submit_burst)
        self._running: dict[str, threading.Thread] = {}
        self._running_owner: dict[str, str] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._seq = 0

    # -- start / stop -----------------------------------------------------------------------
    def start(self, resume: bool = True) -> None:
        """Read the records of the unfinished runs (from the run index) and queue them again (if ``resume``)."""
        self.index.ensure(lambda: [k for k in self.store.list("runs/") if k.endswith("/record.json")])
        owners, finals = self.index.scan()
        records = []
        for run_id in sorted(set(owners) - finals):
            try:
                rec = self.store.get_json(record_key(run_id))
            except ArtifactNotFound:  # indexed at submit, but the record write failed
                continue
            except StoreError as exc:
                log.warning("cannot read the record of %s: %s", run_id, exc)
                continue
            if rec.get("state") in FINAL:  # final record, index marker missing: repair it
                self._mark_final(run_id, rec["state"])
                continue
            records.append(rec)
        records.sort(key=lambda r: (r.get("seq", 0), r.get("created_at", 0.0), r["run_id"]))
        with self._lock:
            for rec in records:
                self._seq = max(self._seq, int(rec.get("seq", 0)))
                handle = RunHandle(rec)
                self._runs[rec["run_id"]] = handle
                if not handle.final and resume:
                    log.info("resuming run %s (%s)", rec["run_id"], rec["state"])
                    rec["state"] = "queued"
                    handle.emit(state_change=gateway_pb2.RunStateChange(
                        state=gateway_pb2.RUN_STATE_QUEUED, message="resumed after a gateway restart"))
                    self._pending.append(rec["run_id"], rec["owner"])
            resumed = len(self._pending)
            self._dispatch()
        log.info("gateway: %d run(s) indexed, %d unfinished, %d resumed", len(owners), len(records), resumed)
        self._resume = resume
        self._lease_thread = threading.Thread(target=self._lease_loop, name="gateway-leases", daemon=True)
        self._lease_thread.start()

    def _lease_loop(self) -> None:
        """Renew the leases of running runs; adopt unfinished runs whose lease expired (their gateway died)."""
        period = self.leases.ttl / 3
        last_adopt = time.monotonic()
        while not self._stopping.wait(period):
            with self._lock:
                running = [self._runs[r] for r in self._running if r in self._runs]
            for handle in running:
                try:
                    ok = self.leases.renew(handle.run_id)
                except StoreError as exc:
                    log.warning("run %s: lease not renewed (%s); retrying", handle.run_id, exc)
                    continue
                if not ok:
                    log.warning("run %s: lease lost to another gateway; stopping it here", handle.run_id)
                    handle.lost = True
                    handle.slot.cancel()
            if self._resume and time.monotonic() - last_adopt >= self.leases.ttl:
                last_adopt = time.monotonic()
                try:
                    self._adopt_orphans()
                except StoreError as exc:
                    log.warning("cannot look for orphaned runs: %s", exc)

    def _adopt_orphans(self) -> None:
        owners, finals = self.index.scan()
        with self._lock:
            known = set(self._runs)
        for run_id in sorted(set(owners) - finals - known):
            if not self.leases.free(run_id):
                continue
            try:
                rec = self.store.get_json(record_key(run_id))
            except ArtifactNotFound:
                continue
            if rec.get("state") in FINAL:
                continue
            with self._lock:
                if run_id in self._runs:
                    continue
                log.info("adopting run %s: its gateway's lease expired", run_id)
                rec["state"] = "queued"
                handle = RunHandle(rec)
                self._recent.pop(run_id, None)
                self._runs[run_id] = handle
                handle.emit(state_change=gateway_pb2.RunStateChange(
                    state=gateway_pb2.RUN_STATE_QUEUED, message="resumed: its gateway stopped"))
                self._pending.append(run_id, rec["owner"])
                self._dispatch()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop running stages (their records stay unfinished, so a new gateway resumes them)."""
        self._stopping.set()
        with self._lock:
            threads = list(self._running.values())
            for rid in self._running:
                handle = self._runs.get(rid)
                if handle is not None:
                    handle.slot.cancel()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._lease_thread is not None:
            self._lease_thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            still_running = set(self._running)
        for run_id in self.leases.held():
            if run_id in still_running:  # its stage has not stopped yet: a successor waits for the lease to expire
                log.warning("run %s did not stop within %.1fs; its lease is left to expire", run_id, timeout)
                continue
            self.leases.release(run_id)  # a successor may take it at once

    # -- queries ----------------------------------------------------------------------------
    def handle(self, owner: str, run_id: str) -> RunHandle:
        """The run ``run_id`` of ``owner``; :class:`RunNotFound` otherwise (also for other users' runs).

        A run not in memory is read from the store (StoreError if the store is unavailable).
        """
        with self._lock:
            handle = self._runs.get(run_id) or self._recent.get(run_id)
            if handle is not None:
                self._recent.move_to_end(run_id) if run_id in self._recent else None
        if handle is None:
            try:
                rec = self.store.get_json(record_key(run_id))
            except ArtifactNotFound:
                raise RunNotFound(run_id) from None
            if rec.get("owner") != owner:
                raise RunNotFound(run_id)
            handle = RunHandle(rec)
            if handle.final:
                with self._lock:
                    handle = self._runs.get(run_id) or self._recent.setdefault(run_id, handle)
                    self._trim_recent()
        if handle.record["owner"] != owner:
            raise RunNotFound(run_id)
        return handle

    def running_ids(self) -> frozenset[str]:
        """The runs this gateway executes now (their thread started; it may still await the lease)."""
        with self._lock:
            return frozenset(self._running)

    def active_ids(self) -> frozenset[str]:
        """The runs held in memory: queued or running here (finished ones live in the store)."""
        with self._lock:
            return frozenset(self._runs)

    def active(self, run_id: str) -> RunHandle | None:
        """The in-memory handle of the queued or running run ``run_id``; None when it is not active here."""
        with self._lock:
            return self._runs.get(run_id)

    def _trim_recent(self) -> None:
        while len(self._recent) > RECENT_RUNS:
            self._recent.popitem(last=False)

    def _running_by_owner(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for owner in self._running_owner.values():
            counts[owner] = counts.get(owner, 0) + 1
        return counts

    def queue_position(self, run_id: str) -> int:
        with self._lock:
            return self._pending.position(run_id, self._running_by_owner())

    def get(self, owner: str, run_id: str) -> gateway_pb2.Run:
        handle = self.handle(owner, run_id)
        position = self.queue_position(run_id)
        with handle.cond:
            return run_proto(handle.record, queue_position=position)

    def list(self, owner: str, limit: int = 0, page_token: str = "") -> tuple[list[gateway_pb2.Run], str]:
        """One page of the owner's runs, newest first, and the next page's token ("" after the last).

        Raises ValueError for a malformed ``page_token``.
        """
        if not valid_page_token(page_token):
            raise ValueError("not a page token of this gateway")
        size = min(MAX_PAGE_SIZE, limit if limit > 0 else PAGE_SIZE)
        entries, next_token = self.index.page(owner, size, page_token)
        out = []
        for entry in entries:
            try:
                h = self.handle(owner, entry.run_id)
            except RunNotFound:  # indexed, but its record was never written
                continue
            position = self.queue_position(h.run_id)
            with h.cond:
                out.append(run_proto(h.record, full=False, queue_position=position))
        return out, next_token

    def check_quota(self, owner: str) -> None:
        """Raise :class:`QuotaExceeded` if ``owner`` may not submit now (queued runs, submit rate)."""
        with self._lock:
            queued = self._pending.queued_of(owner)
        if queued >= self.limits.max_queued_per_user:
            raise QuotaExceeded("queued_runs", f"{queued} of your runs are queued; at most "
                                f"{self.limits.max_queued_per_user} on this gateway (wait or cancel some)")
        wait = self._rate.take(owner)
        if wait > 0:
            raise QuotaExceeded("submit_rate", f"at most {self.limits.submit_rate_per_minute} submits a minute "
                                f"(burst {self.limits.submit_burst}); retry in {wait:.0f}s")

    # -- submit / cancel --------------------------------------------------------------------
    def submit(self, owner: str, spec: FlowSpec, no_cache: bool = False,
               dataset_ref: dict[str, Any] | None = None, model_ref: dict[str, Any] | None = None,
               ) -> gateway_pb2.Run:
        """Record and queue a validated run; returns its record."""
        with self._lock:
            self._seq += 1
            run_id = new_run_id()
            rec = {"run_id": run_id, "name": spec.name, "owner": owner, "state": "queued",
                   "spec": spec.to_dict(), "no_cache": no_cache, "seq": self._seq, "created_at": time.time(),
                   "started_at": None, "finished_at": None, "dataset_ref": dataset_ref, "error": None,
                   "model_ref": model_ref,
                   "report": None, "artifacts": {"record": record_key(run_id)},
                   "stages": [{"name": name, "state": "pending"} for name in st.STAGES]}
            handle = RunHandle(rec)
            handle._spec = spec
            self.index.add(owner, run_id, rec["created_at"])  # the client hears UNAVAILABLE at once
            self._save(handle, retries=1)
            self._runs[run_id] = handle
            self._pending.append(run_id, owner)
            position = self._pending.position(run_id, self._running_by_owner())
            handle.emit(state_change=gateway_pb2.RunStateChange(state=gateway_pb2.RUN_STATE_QUEUED,
                                                                message="queued", queue_position=position))
            log.info("run %s (%s) queued for %s at position %d", run_id, spec.name, owner, position)
            self._dispatch()
            return run_proto(rec, queue_position=self.queue_position(run_id))

    def cancel(self, owner: str, run_id: str) -> gateway_pb2.Run:
        """Cancel a queued run, or stop the running stage of a running one (no further retries).

        Answers with the final state when the run ends within CANCEL_WAIT_S, else with its current state.
        """
        handle = self.handle(owner, run_id)
        with self._lock:
            if handle.final:
                return run_proto(handle.record)
            queued = run_id in self._pending
            if queued:
                self._pending.remove(run_id)
            else:
                handle.slot.cancel()
        if queued:  # outside the lock: the final write may wait for the store
            self._finish(handle, "cancelled", {"code": "CANCELLED", "field": "", "reason": "CANCELLED",
                                               "message": "cancelled while queued"})
            return run_proto(handle.record)
        log.info("run %s: cancel requested", run_id)
        with handle.cond:  # a short wait for the final state (the stage stops at once), never a join
            handle.cond.wait_for(lambda: handle.final or handle.done, CANCEL_WAIT_S)
            return run_proto(handle.record)

    # -- watching ---------------------------------------------------------------------------
    async def watch_async(self, handle: RunHandle) -> AsyncIterator[gateway_pb2.RunEvent]:
        """Every event of the run (replayed from its start in this gateway), ending with the summary.

        ``handle`` comes from :meth:`handle` (called off the event loop: it may read the store). A
        coroutine stream: waiting for the next event costs no thread. A run this gateway does not run
        (another gateway holds it) is followed by polling its record in the store until it is final.
        """
        if not handle.events:
            async for event in self._follow_record(handle):
                yield event
            return
        flag = handle.subscribe()
        index = 0
        try:
            while True:
                flag.clear()  # before reading: an event emitted after the read sets it again
                with handle.cond:
                    batch = handle.events[index:]
                    index += len(batch)
                    done = handle.done
                for event in batch:
                    yield event
                    if event.WhichOneof("event") == "summary":
                        return
                if done and not batch:
                    return
                try:
                    await asyncio.wait_for(flag.wait(), timeout=30)
                except TimeoutError:
                    pass
        finally:
            handle.unsubscribe(flag)

    async def _follow_record(self, handle: RunHandle) -> AsyncIterator[gateway_pb2.RunEvent]:
        """Stage events as the run's stored record shows them finish, then the summary once it is final."""
        record, shown = handle.record, set()
        while True:
            final = record.get("state") in FINAL or self._stopping.is_set()
            for s in record.get("stages", []):  # a final record: every stage, as it ended
                if (final or s.get("state") in STAGE_FINAL) and s["name"] not in shown:
                    shown.add(s["name"])
                    yield gateway_pb2.RunEvent(run_id=handle.run_id, time=time.time(), stage_finished=stage_proto(s))
            if final:
                yield gateway_pb2.RunEvent(run_id=handle.run_id, time=time.time(), summary=run_proto(record))
                return
            await asyncio.sleep(FOLLOW_POLL_S)
            try:
                record = await asyncio.to_thread(self.store.get_json, record_key(handle.run_id))
            except ArtifactNotFound:  # removed meanwhile: what was last seen is all there is
                record = {**record, "state": record.get("state") if record.get("state") in FINAL else "failed"}
            except StoreError as exc:  # unavailable for a while: the next poll tries again
                log.warning("run %s: record not read while following it (%s)", handle.run_id, exc)

    # -- internals --------------------------------------------------------------------------
    def _retry_store(self, what: str, fn: Any) -> Any:
        """``fn()``, retried with back-off while the store is unavailable, within the policy's time budget."""
        start = time.monotonic()
        for attempt in range(1, STORE_RETRIES + 1):
            try:
                return fn()
            except StoreUnavailable as exc:
                if (attempt == STORE_RETRIES or self._stopping.is_set()
                        or time.monotonic() - start > self.policy.budget_s):
                    raise
                delay = self.policy.delay(attempt)
                log.warning("%s: store unavailable (%s); retry in %.1fs", what, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _save(self, handle: RunHandle, retries: int = STORE_RETRIES) -> None:
        """Write the record (retrying while the store is unavailable, within the policy's time budget)."""
        self._put_record(handle.run_id, lambda: handle.record, handle.cond, retries, self.policy.budget_s)

    def _put_record(self, run_id: str, record: Any, lock: Any, retries: int, budget: float | None) -> None:
        """Write ``record()`` as the run's record, retrying for ``budget`` seconds (None: until stopping)."""
        start = time.monotonic()
        for attempt in range(1, retries + 1):
            try:
                with lock:
                    self.store.put_json(record_key(run_id), record(), overwrite=True)
                return
            except StoreError as exc:
                over = budget is not None and time.monotonic() - start > budget
                if attempt == retries or self._stopping.is_set() or over:
                    raise
                delay = self.policy.delay(attempt)
                log.warning("run %s: cannot save record (%s); retry in %.1fs", run_id, exc, delay)
                time.sleep(delay)

    def _dispatch(self) -> None:
        with self._lock:
            while (len(self._running) < self.limits.max_concurrent_runs and self._pending
                   and not self._stopping.is_set()):
                running = self._running_by_owner()
                cap = self.limits.max_running_per_user or self.limits.max_concurrent_runs
                run_id = self._pending.pop(running, lambda o, r=running, c=cap: r.get(o, 0) < c)
                if run_id is None:  # every queued owner is at its running limit
                    break
                self._running_owner[run_id] = self._runs[run_id].record["owner"]
                thread = threading.Thread(target=self._run, args=(self._runs[run_id],), daemon=True,
                                          name=f"run-{run_id}")
                self._running[run_id] = thread
                log.info(STARTED_LOG, run_id, len(self._running), self.limits.max_concurrent_runs)
                thread.start()

    def _finish(self, handle: RunHandle, state: str, error: dict[str, Any] | None) -> None:
        """Make the run final: in the store first, then in memory and for watchers.

        The record is written until the store takes it (or the gateway stops: then the run stays
        unfinished in the store and in every client's view, and the next gateway resumes it).
        """
        error = client_error(error)
        if handle.run_id in self.leases.held():
            try:
                handle.lost = handle.lost or not self.leases.renew(handle.run_id)
            except StoreError:
                pass  # the store is down: the final write below waits for it
        if handle.lost:  # another gateway runs it now: its final state is that gateway's to write
            log.warning("run %s: lease lost; the final state %s is left to the gateway that holds it",
                        handle.run_id, state)
            return
        with handle.cond:
            final = {**handle.record, "state": state, "finished_at": time.time(), "error": error}
        try:
            self._put_record(handle.run_id, lambda: final, handle.cond, STORE_RETRIES, None)
        except StoreError as exc:
            log.error("run %s: final state %s not saved (%s); it stays unfinished for the next gateway",
                      handle.run_id, state, exc)
            return
        with handle.cond:
            handle.record.update(final)
        self._mark_final(handle.run_id, state)
        with self._lock:  # no longer active: kept among the recent runs for its watchers
            if self._runs.pop(handle.run_id, None) is not None:
                self._recent[handle.run_id] = handle
                self._trim_recent()
        message = state if error is None else f"{state}: {error['message']}"
        handle.emit(state_change=gateway_pb2.RunStateChange(state=RUN_STATES[state], message=message))
        handle.emit(summary=run_proto(handle.record))
        log.info("run %s %s", handle.run_id, message)

    def _mark_final(self, run_id: str, state: str) -> None:
        try:
            self._retry_store("run index", lambda: self.index.finish(run_id, state))
        except StoreError as exc:  # the record is final: the next start repairs the index
            log.warning("run %s: index not marked final: %s", run_id, exc)

    def _run(self, handle: RunHandle) -> None:
        try:
            if not self.leases.acquire(handle.run_id):
                log.info("run %s: another gateway holds its lease and runs it", handle.run_id)
                handle.lost = True
                return
            self._execute(handle)
        except st.StageCancelled:
            if not self._stopping.is_set() and not handle.lost:
                self._finish(handle, "cancelled", {"code": "CANCELLED", "field": "", "reason": "CANCELLED",
                                                   "message": "cancelled by the user"})
        except st.StageFailed as exc:
            self._finish(handle, "failed", exc.to_dict())
        except Exception as exc:  # noqa: BLE001 - recorded in the run, never lost
            if self._stopping.is_set() or handle.lost:
                log.info("run %s interrupted by shutdown or a lost lease (%s)", handle.run_id, exc)
            else:
                log.exception("run %s failed", handle.run_id)
                code = "UNAVAILABLE" if isinstance(exc, StoreError) else "INTERNAL"
                self._finish(handle, "failed", {"code": code, "field": "", "reason": type(exc).__name__,
                                                "message": str(exc)})
        finally:
            if not self._stopping.is_set():
                self.leases.release(handle.run_id)
            with self._lock:
                self._running.pop(handle.run_id, None)
                self._running_owner.pop(handle.run_id, None)
                if handle.lost and self._runs.get(handle.run_id) is handle:
                    del self._runs[handle.run_id]  # another gateway runs it: the store's record is the truth
                self._dispatch()

    def _stage(self, handle: RunHandle, name: str) -> dict[str, Any]:
        stages = handle.record["stages"]
        found = next((s for s in stages if s["name"] == name), None)
        if found is None:  # a record written before this stage existed
            found = {"name": name, "state": "pending"}
            stages.append(found)
        return found

    def _execute(self, handle: RunHandle) -> None:
        rec = handle.record
        spec = handle.spec
        with handle.cond:
            rec.update(state="running", started_at=rec.get("started_at") or time.time())
        self._save(handle)
        handle.emit(state_change=gateway_pb2.RunStateChange(state=gateway_pb2.RUN_STATE_RUNNING, message="running"))
        npz = rec.get("dataset_ref")
        results: dict[str, Any] = {}
        if rec.get("model_ref") is not None:  # a given model (model.artifact) stands in for training
            results["train"] = st.given_model_result(rec["model_ref"])
        done: set[str] = set()
        for name in st.STAGES:
            srec = self._stage(handle, name)
            if srec["state"] == "succeeded":  # resumed run: keep what is done
                results[name] = st.result_from_dict(name, srec["result"])
                done.add(name)
            elif srec["state"] == "skipped":
                done.add(name)
        # the stage graph: each stage starts once the stages it needs are done (synth beside simulate)
        st.run_graph(lambda name: self._run_stage(handle, name, spec, results, npz), done, handle.slot)
        with handle.cond:
            stages = [dict(s) for s in rec["stages"]]
        report, artifacts = self._retry_store("report", lambda: build_report(self.store, handle.run_id, rec["spec"],
                                                                              stages))
        with handle.cond:
            rec["report"] = report.to_dict()
            rec["artifacts"] = artifacts
        self._finish(handle, "succeeded", None)

    def _run_stage(self, handle: RunHandle, name: str, spec: FlowSpec, results: dict[str, Any],
                   npz: dict[str, Any] | None) -> None:
        srec = self._stage(handle, name)
        plan = st.plan(name, spec, results, npz)
        if plan.request is None:
            with handle.cond:
                srec.update(state="skipped", reason=plan.skip_reason)
            self._save(handle)
            handle.emit(stage_finished=stage_proto(srec))
            return
        key = cache_key(name, plan.inputs, plan.config)
        start = time.monotonic()
        with handle.cond:
            srec.update(state="running", cache_key=key, inputs=plan.inputs, cached=False, attempts=0,
                        started_at=time.time(), error=None)
        self._save(handle)
        entry = None if handle.record.get("no_cache") else self._retry_store(
            "cache lookup", lambda: self.cache.get(name, key))
        if entry is not None:
            handle.emit(stage_started=gateway_pb2.StageStarted(stage=name, attempt=0, cache_key=key))
            result = st.result_from_dict(name, entry["result"])
            cached, attempts, compute = True, 0, float(entry.get("compute_seconds", 0.0))
            log.info("run %s: %s served from cache %s", handle.run_id, name, key[:12])
        else:
            def on_attempt(n: int) -> None:
                with handle.cond:
                    srec["attempts"] = n
                handle.emit(stage_started=gateway_pb2.StageStarted(stage=name, attempt=n, cache_key=key))

            try:
                result, attempts = st.call_stage(self.clients, name, plan.request, handle.slot, self.policy,
                                                 lambda ev: handle.emit(progress=ev), on_attempt)
                st.check_result(name, result)
            except st.StageFailed as exc:
                with handle.cond:
                    srec.update(state="failed", error=client_error(exc.to_dict()), seconds=time.monotonic() - start)
                self._save(handle)
                handle.emit(stage_finished=stage_proto(srec))
                raise
            except st.StageCancelled:
                if not self._stopping.is_set():
                    with handle.cond:
                        srec.update(state="cancelled", seconds=time.monotonic() - start)
                    self._save(handle)
                    handle.emit(stage_finished=stage_proto(srec))
                raise
            cached, compute = False, time.monotonic() - start
        outputs = st.outputs_of(result)
        metrics = st.metrics_of(name, result)
        result_dict = st.result_to_dict(result)
        if not cached:
            try:
                self.cache.put(name, key, result_dict, outputs, metrics, compute, handle.run_id)
            except StoreError as exc:
                log.warning("run %s: %s not cached: %s", handle.run_id, name, exc)
        results[name] = result
        with handle.cond:
            srec.update(state="succeeded", cached=cached, attempts=attempts, seconds=time.monotonic() - start,
                        finished_at=time.time(),
                        compute_seconds=compute, outputs=outputs, metrics=metrics, result=result_dict)
        self._save(handle)
        handle.emit(stage_finished=stage_proto(srec))


def status_of(exc: BaseException) -> grpc.StatusCode:
    """The status a failed gateway call reports for ``exc``."""
    if isinstance(exc, RunNotFound | ArtifactNotFound):
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.INTERNAL
