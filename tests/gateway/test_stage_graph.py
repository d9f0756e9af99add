"""The stage graph: stages start when the stages they need are done; synth runs beside simulate."""

from __future__ import annotations

import json
import threading

import grpc
import pytest
from gw_support import tiny_npz, tiny_spec

from spiker_gateway.stages import NEEDS, STAGES, CallSlot, StageCancelled, StageFailed, plan, run_graph
from spiker_gateway.validate import Limits, validate_spec

REF = {"bucket": "b", "key": "artifacts/sha256/aa/" + "a" * 64, "sha256": "a" * 64, "size": 1}


class _Recorder:
    """A fake ``run_stage``: records start/end order; ``block`` stages wait for an event."""

    def __init__(self, fail: str | None = None, block: dict[str, threading.Event] | None = None,
                 slot: CallSlot | None = None) -> None:
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.fail = fail
        self.block = block or {}
        self.slot = slot

    def __call__(self, name: str) -> None:
        with self.lock:
            self.order.append(f"start {name}")
        if name in self.block:
            while not self.block[name].wait(0.05):
                if self.slot is not None and self.slot.cancelled.is_set():
                    with self.lock:
                        self.order.append(f"cancelled {name}")
                    raise StageCancelled(name)
        if name == self.fail:
            raise StageFailed(grpc.StatusCode.FAILED_PRECONDITION, "", "TOOL_ERROR", f"{name} broke")
        with self.lock:
            self.order.append(f"end {name}")


def test_every_stage_starts_after_the_stages_it_needs() -> None:
    rec = _Recorder()
    done: set[str] = set()
    run_graph(rec, done, CallSlot())
    assert done == set(STAGES)
    for name in STAGES:
        for need in NEEDS[name]:
            assert rec.order.index(f"end {need}") < rec.order.index(f"start {name}")


def test_synth_runs_beside_simulate() -> None:
    simulate_started = threading.Event()
    rec = _Recorder(block={"synth": simulate_started})
    original = rec.__call__

    def run(name: str) -> None:
        if name == "simulate":
            simulate_started.set()  # synth is still running: it ends only after this
        original(name)

    done: set[str] = set()
    run_graph(run, done, CallSlot())
    assert rec.order.index("start simulate") < rec.order.index("end synth")
    assert done == set(STAGES)


def test_done_stages_are_not_run_again() -> None:
    rec = _Recorder()
    run_graph(rec, {"train", "optimize", "hdlgen"}, CallSlot())
    assert sorted(rec.order) == ["end simulate", "end synth", "start simulate", "start synth"]


def test_a_failure_cancels_the_stages_beside_it_and_is_raised() -> None:
    slot = CallSlot()
    never = threading.Event()
    rec = _Recorder(fail="hdlgen", block={"synth": never}, slot=slot)
    with pytest.raises(StageFailed, match="hdlgen broke"):
        run_graph(rec, {"train", "optimize"}, slot)
    assert "cancelled synth" in rec.order and "start simulate" not in rec.order
    assert slot.cancelled.is_set()


def test_a_cancelled_run_starts_nothing() -> None:
    slot = CallSlot()
    slot.cancel()
    rec = _Recorder()
    with pytest.raises(StageCancelled):
        run_graph(rec, set(), slot)
    assert rec.order == []


def test_call_slot_cancels_every_running_call() -> None:
    class _Call:
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    slot, a, b = CallSlot(), _Call(), _Call()
    slot.set(a)
    slot.set(b)
    slot.clear(a)
    slot.cancel()
    assert (a.cancelled, b.cancelled) == (False, True)


def test_hdlgen_generates_only_and_synth_estimates() -> None:
    from spiker_api.v1 import common_pb2, trainer_pb2

    results = {"train": trainer_pb2.TrainResult(model=common_pb2.ArtifactRef(**REF))}
    spec = validate_spec(json.dumps(tiny_spec("c" * 64, hdl={"resources": True})), Limits())
    hdl, synth = plan("hdlgen", spec, results, REF), plan("synth", spec, results, REF)
    assert hdl.request.estimate_resources is False and synth.request.estimate_resources is True
    assert synth.inputs == hdl.inputs == {"model": REF}
    off = validate_spec(json.dumps(tiny_spec("c" * 64)), Limits())
    assert plan("synth", off, results, REF).request is None  # hdl.resources: false skips it
    assert synth.request.resources_method == "synth" and "resources_method" not in synth.config
    fast = validate_spec(json.dumps(tiny_spec("c" * 64, hdl={"resources": "fast"})), Limits())
    planned = plan("synth", fast, results, REF)
    assert planned.request.estimate_resources is True and planned.request.resources_method == "fast"
    assert planned.config["resources_method"] == "fast"  # not the synthesized counts' cache entry


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_flow_synthesizes_beside_the_simulation(tmp_path) -> None:
    """Through the services: synth and simulate overlap in time; the report has the estimate."""
    from spiker.store import LocalStore
    from spiker_api.v1 import gateway_pb2
    from spiker_app.local import LocalStack
    from spiker_gateway.client import GatewayClient

    with LocalStack(LocalStore(tmp_path / "store"), work_root=tmp_path / "work") as stack, \
            GatewayClient(stack.target, stack.token) as client:
        ref = client.upload_bytes(tiny_npz(), "tiny.npz")
        spec = tiny_spec(ref.sha256, hdl={"resources": True}, simulate={"samples": 40})
        run = client.submit(spec)
        events = list(client.watch(run.run_id))
        again = client.wait(client.submit(spec).run_id, timeout=120)  # the same spec: every stage from cache
    assert [(s.name, s.cached) for s in again.stages if s.state != gateway_pb2.STAGE_STATE_SKIPPED] == [
        ("train", True), ("hdlgen", True), ("synth", True), ("simulate", True)]
    final = events[-1].summary
    assert final.state == gateway_pb2.RUN_STATE_SUCCEEDED, final.error.message
    started = {e.stage_started.stage: e.time for e in events if e.WhichOneof("event") == "stage_started"}
    finished = {e.stage_finished.name: e.time for e in events if e.WhichOneof("event") == "stage_finished"}
    assert started["simulate"] < finished["synth"] and started["synth"] < finished["simulate"]
    report = json.loads(final.report_json)
    assert report["resources"]["lut"] > 0 and report["mismatches"] == 0
    assert set(report["stages"]) == set(STAGES)
