"""Faults: a stage service killed mid-stage and restarted, a gateway restarted mid-run."""

from __future__ import annotations

import pytest
from gw_support import ALICE, ServicesProcess, free_port, tiny_npz, tiny_spec

from spiker.store import ArtifactRef, LocalStore
from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.stages import RetryPolicy

pytestmark = pytest.mark.slow

PATIENT = RetryPolicy(max_attempts=12, initial_delay=0.2, max_delay=4.0)


def _wait_stage_progress(client: GatewayClient, run_id: str, stage: str, phase: str) -> None:
    for ev in client.watch(run_id, timeout=300):
        kind = ev.WhichOneof("event")
        if kind == "progress" and ev.progress.stage == stage and ev.progress.phase == phase:
            return
        if kind == "summary":
            raise AssertionError(f"run ended before {stage}/{phase}: {ev.summary.error}")


def test_stage_service_killed_mid_stage_and_restarted(make_gateway, tmp_path) -> None:
    store = LocalStore(tmp_path / "store")
    svc = ServicesProcess(free_port(), {"SPIKER_STORE_DIR": str(store.root), "SPIKER_S3_ENDPOINT": ""},
                          tmp_path / "services.log")
    svc.start()
    try:
        gw = make_gateway(svc.target, store=store, policy=PATIENT)
        with GatewayClient(gw.target, ALICE) as c:
            ref = c.upload_bytes(tiny_npz(), "tiny.npz")
            run = c.submit(tiny_spec(ref.sha256, name="kill-svc", train={"epochs": 40, "lr": 0.01}))
            _wait_stage_progress(c, run.run_id, "train", "epoch")
            svc.kill()  # SIGKILL the server and its jobs mid-training
            svc.start()  # same port: the gateway's retries reach it again
            final = c.wait(run.run_id, timeout=300)
        assert final.state == gateway_pb2.RUN_STATE_SUCCEEDED, final.error
        train = {s.name: s for s in final.stages}["train"]
        assert train.attempts >= 2 and not train.cached
        # no lost or duplicated artifact: every output verifies, one cache entry per stage
        for s in final.stages:
            for out in s.outputs.values():
                store.verify(ArtifactRef(out.bucket, out.key, out.sha256, out.size))
        assert len(store.list("cache/train/")) == 1
    finally:
        svc.stop()


def test_gateway_restarted_mid_run_resumes(services, make_gateway, session_store) -> None:
    gw = make_gateway(services)
    with GatewayClient(gw.target, ALICE) as c:
        ref = c.upload_bytes(tiny_npz(), "tiny.npz")
        run = c.submit(tiny_spec(ref.sha256, name="restart-gw", train={"epochs": 40, "lr": 0.01, "seed": 11}),
                       no_cache=True)
        _wait_stage_progress(c, run.run_id, "train", "epoch")
    gw.stop(0.5)  # the running stage is cancelled; the record stays unfinished
    rec = session_store.get_json(f"runs/{run.run_id}/record.json")
    assert rec["state"] == "running"

    gw2 = make_gateway(services)
    with GatewayClient(gw2.target, ALICE) as c:
        assert run.run_id in [r.run_id for r in c.list()]
        final = c.wait(run.run_id, timeout=300)
        assert final.state == gateway_pb2.RUN_STATE_SUCCEEDED, final.error
        assert c.get(run.run_id).state == gateway_pb2.RUN_STATE_SUCCEEDED
    # a third gateway replays the finished run from its record
    gw3 = make_gateway(services)
    with GatewayClient(gw3.target, ALICE) as c:
        events = list(c.watch(run.run_id, timeout=30))
        assert events[-1].summary.state == gateway_pb2.RUN_STATE_SUCCEEDED


class FlakyStore:
    """A store proxy that raises StoreUnavailable while ``down`` (the gateway's view of an S3 outage)."""

    def __init__(self, inner: LocalStore) -> None:
        self._inner = inner
        self.down = False
        self.refused = 0

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.down:
                from spiker.store import StoreUnavailable

                self.refused += 1
                raise StoreUnavailable("test outage")
            return attr(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"FlakyStore({self._inner!r})"


def test_store_outage_unavailable_then_run_resumes(services, make_gateway, session_store) -> None:
    import threading

    import grpc

    from spiker_api.errors import error_detail

    store = FlakyStore(session_store)
    gw = make_gateway(services, store=store)
    with GatewayClient(gw.target, ALICE) as c:
        ref = c.upload_bytes(tiny_npz(), "tiny.npz")
        store.down = True
        with pytest.raises(grpc.RpcError) as info:
            c.submit(tiny_spec(ref.sha256, name="outage"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_detail(info.value)["reason"] == "STORE_UNAVAILABLE"
        store.down = False
        run = c.submit(tiny_spec(ref.sha256, name="outage", train={"epochs": 3, "lr": 0.01, "seed": 5}),
                       no_cache=True)
        _wait_stage_progress(c, run.run_id, "train", "uploading")
        refused = store.refused
        store.down = True  # the gateway's record and cache writes after the stage fail for 3 s
        threading.Timer(3.0, lambda: setattr(store, "down", False)).start()
        final = c.wait(run.run_id, timeout=300)
        assert store.refused > refused, "the outage must have hit the run's store calls"
        assert final.state == gateway_pb2.RUN_STATE_SUCCEEDED, final.error
    assert session_store.get_json(f"runs/{run.run_id}/record.json")["state"] == "succeeded"
