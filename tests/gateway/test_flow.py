"""Tiny flows through the gateway and the real stage services: report, cache, opt-out, cancel, queue order."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from gw_support import ALICE, BOB, tiny_npz, tiny_spec, wait_for

from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.runs import STARTED_LOG
from spiker_gateway.validate import Limits

pytestmark = pytest.mark.slow

REPORT_KEYS = {"float_accuracy", "quant_accuracy", "hw_accuracy", "mismatches", "samples", "optim_params",
               "cycles_mean", "bound_mean", "resources", "stages", "artifacts"}


def _stages(run: gateway_pb2.Run) -> dict[str, gateway_pb2.StageRecord]:
    return {s.name: s for s in run.stages}


def test_tiny_flow_report_cache_and_opt_out(services, make_gateway, session_store) -> None:
    gw = make_gateway(services)
    with GatewayClient(gw.target, ALICE) as c:
        ref = c.upload_bytes(tiny_npz(), "tiny.npz")
        spec = tiny_spec(ref.sha256, name="cache-proof", train={"epochs": 1, "lr": 0.01, "seed": 7})
        events = []
        run = c.submit(spec)
        for ev in c.watch(run.run_id, timeout=300):
            events.append(ev)
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[-1] == "summary" and "progress" in kinds and "stage_started" in kinds
        first = events[-1].summary
        assert first.state == gateway_pb2.RUN_STATE_SUCCEEDED, first.error
        report = json.loads(first.report_json)
        assert REPORT_KEYS <= set(report)
        assert report["mismatches"] == 0 and report["samples"] == 10
        assert report["optim_params"] == {"weights_bw": 5, "neurons_bw": 8, "fp_dec": 3}
        assert report["cycles_mean"] > 0 and report["bound_mean"] > 0
        stages = _stages(first)
        assert stages["optimize"].state == gateway_pb2.STAGE_STATE_SKIPPED
        assert not any(s.cached for s in first.stages)
        assert stages["train"].outputs["model"].key.startswith("artifacts/sha256/")
        assert stages["train"].inputs["dataset"].sha256 == ref.sha256
        # everything under the run in the store
        keys = set(session_store.list(f"runs/{first.run_id}/"))
        for name in ("record.json", "report.json", "report.md", "plots/training.png", "vhdl/files.txt"):
            assert f"runs/{first.run_id}/{name}" in keys
        assert set(report["artifacts"].values()) <= keys | set(session_store.list("artifacts/"))

        # the same spec again: every stage from cache, no service call, same outputs
        again = c.wait(c.submit(spec).run_id, timeout=120)
        assert again.state == gateway_pb2.RUN_STATE_SUCCEEDED
        for name, s in _stages(again).items():
            if s.state == gateway_pb2.STAGE_STATE_SKIPPED:  # optimize (explicit bit-widths), synth (no resources)
                continue
            assert s.cached and s.attempts == 0, name
            assert s.outputs == stages[name].outputs
        rec = session_store.get_json(f"runs/{again.run_id}/record.json")
        assert [s["cached"] for s in rec["stages"] if s["state"] != "skipped"] == [True, True, True]
        assert json.loads(again.report_json)["hw_accuracy"] == report["hw_accuracy"]

        # per-run opt-out: the stages run again (and train is deterministic: same model)
        fresh = c.wait(c.submit(spec, no_cache=True).run_id, timeout=300)
        assert fresh.state == gateway_pb2.RUN_STATE_SUCCEEDED
        assert not any(s.cached for s in fresh.stages)
        assert all(s.attempts == 1 for s in fresh.stages if s.state == gateway_pb2.STAGE_STATE_SUCCEEDED)


def test_cancel_stops_the_running_stage(services, make_gateway) -> None:
    gw = make_gateway(services)
    with GatewayClient(gw.target, BOB) as c:
        ref = c.upload_bytes(tiny_npz(), "tiny.npz")
        spec = tiny_spec(ref.sha256, name="cancel-me", train={"epochs": 200, "lr": 0.01, "seed": 3})
        run = c.submit(spec, no_cache=True)
        stream = c.watch(run.run_id, timeout=300)
        for ev in stream:
            if ev.WhichOneof("event") == "progress" and ev.progress.phase == "epoch":
                break
        t0 = time.monotonic()
        cancelled = c.cancel(run.run_id)
        assert cancelled.state == gateway_pb2.RUN_STATE_CANCELLED
        assert time.monotonic() - t0 < 30
        train = _stages(cancelled)["train"]
        assert train.state == gateway_pb2.STAGE_STATE_CANCELLED
        assert _stages(cancelled)["simulate"].state == gateway_pb2.STAGE_STATE_PENDING
        kinds = [ev.WhichOneof("event") for ev in stream]
        assert kinds[-1] == "summary"


def _starts(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    """(run id, runs running then) of each run the gateway took from its queue, in that order (its log)."""
    return [(rec.args[0], rec.args[1]) for rec in caplog.records
            if rec.name == "spiker_gateway.runs" and rec.msg == STARTED_LOG]


def test_twenty_runs_from_several_clients_fifo(services, make_gateway, caplog) -> None:
    """20 small runs submitted at once by 4 clients with 2 at a time: all finish, each user's in submission order
    (the queue is fair between users, so the users' runs interleave)."""
    caplog.set_level(logging.INFO, logger="spiker_gateway.runs")
    gw = make_gateway(services, limits=Limits(max_concurrent_runs=2))
    with GatewayClient(gw.target, ALICE) as c:
        ref = c.upload_bytes(tiny_npz(), "tiny.npz")
        spec = tiny_spec(ref.sha256, name="load")
        assert c.wait(c.submit(spec).run_id, timeout=300).state == gateway_pb2.RUN_STATE_SUCCEEDED  # warm cache
    submitted: list[str] = []
    owners: dict[str, str] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(token: str, n: int) -> None:
        try:
            with GatewayClient(gw.target, token) as cl:
                cl.upload_bytes(tiny_npz(), "tiny.npz")  # uploads are per user: Bob needs his own
                for i in range(n):
                    run = cl.submit(tiny_spec(ref.sha256, name=f"load-{token[4:7]}-{i}"))
                    with lock:
                        submitted.append(run.run_id)
                        owners[run.run_id] = run.owner
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(tok, 5)) for tok in (ALICE, BOB, ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(submitted) == 20
    manager = gw.manager
    def record(run_id: str) -> dict:
        return manager.handle(owners[run_id], run_id).record

    wait_for(lambda: all(record(r)["state"] in ("succeeded", "failed", "cancelled") for r in submitted), 240,
             "20 runs to finish", 0.5)
    states = {record(r)["state"] for r in submitted}
    assert states == {"succeeded"}
    for user in ("alice", "bob"):
        mine = [r for r in submitted if owners[r] == user]
        by_seq = sorted(mine, key=lambda r: record(r)["seq"])
        started = [r for r, _ in _starts(caplog) if r in set(mine)]
        assert started == by_seq, "a user's runs must start in the order they were accepted"
    starts = [(r, n) for r, n in _starts(caplog) if r in owners]
    assert len(starts) == 20 and max(n for _, n in starts) <= 2  # never more than the limit at once
    with GatewayClient(gw.target, ALICE) as a, GatewayClient(gw.target, BOB) as b:
        assert len([r for r in a.list() if r.name.startswith("load-")]) == 10
        assert len([r for r in b.list() if r.name.startswith("load-")]) == 10
