"""Issue 16, items 4, 5, 7 and 10: fair queue and quotas, paged listings and records on demand,
final states the store holds, and a retry budget by time. No stage work runs."""

from __future__ import annotations

import threading

import grpc
import pytest
from gw_support import ALICE, BOB, free_port, tiny_npz, tiny_spec, wait_for

from spiker.store import LocalStore, StoreUnavailable
from spiker_api.errors import error_detail
from spiker_api.v1 import gateway_pb2, trainer_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.fairness import FairQueue, RateLimiter
from spiker_gateway.runs import RunManager
from spiker_gateway.stages import CallSlot, RetryPolicy, StageFailed, call_stage
from spiker_gateway.validate import Limits

#: unreachable services, a patient policy: the first run keeps RUNNING, the others stay queued
PATIENT = RetryPolicy(max_attempts=1000, initial_delay=30.0, max_delay=30.0)
FAIL_FAST = RetryPolicy(max_attempts=1)


def _gateway(make_gateway, tmp_path, store=None, policy=FAIL_FAST, **limits):
    return make_gateway(f"127.0.0.1:{free_port()}", store=store or LocalStore(tmp_path / "store"),
                        limits=Limits(**limits), policy=policy)


def _code(fn, *args, **kwargs) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value.code(), error_detail(info.value)


# -- item 4: fairness and quotas ----------------------------------------------------------------

def test_fair_queue_interleaves_users_and_respects_running_counts() -> None:
    q = FairQueue()
    for i in range(5):
        q.append(f"a{i}", "alice")
    q.append("b0", "bob")
    q.append("b1", "bob")
    assert q.position("b0", {"alice": 1}) == 1  # alice already runs one: bob goes first
    assert q.order({"alice": 1}) == ["b0", "a0", "b1", "a1", "a2", "a3", "a4"]
    assert q.pop({"alice": 1}) == "b0"
    assert q.pop({"alice": 1, "bob": 1}, eligible=lambda o: o != "alice") == "b1"
    assert q.pop({}, eligible=lambda o: False) is None
    q.remove("a3")
    assert list(q) == ["a0", "a1", "a2", "a4"] and len(q) == 4


def test_rate_limiter_is_a_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0  # per user
    now[0] = 1.0
    assert limiter.take("a") == 0


def test_another_users_run_is_next_not_behind_a_flood(make_gateway, tmp_path) -> None:
    gw = _gateway(make_gateway, tmp_path, policy=PATIENT, max_concurrent_runs=1)
    with GatewayClient(gw.target, ALICE) as alice, GatewayClient(gw.target, BOB) as bob:
        flood = [alice.submit(tiny_spec()) for _ in range(12)]
        wait_for(lambda: alice.get(flood[0].run_id).state == gateway_pb2.RUN_STATE_RUNNING, 30, "first run")
        mine = bob.submit(tiny_spec())
        assert mine.queue_position == 1
        assert alice.get(flood[1].run_id).queue_position == 2
        for run in [*flood, mine]:
            (alice if run.owner == "alice" else bob).cancel(run.run_id)


def test_per_user_queue_rate_and_storage_limits(make_gateway, tmp_path) -> None:
    gw = _gateway(make_gateway, tmp_path, policy=PATIENT, max_concurrent_runs=1, max_queued_per_user=3)
    with GatewayClient(gw.target, ALICE) as alice, GatewayClient(gw.target, BOB) as bob:
        runs = [alice.submit(tiny_spec()) for _ in range(4)]  # one running, three queued
        code, detail = _code(alice.submit, tiny_spec())
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and detail["field"] == "queued_runs"
        bob.cancel(bob.submit(tiny_spec()).run_id)  # bob is not limited by alice's queue
        for run in runs:
            alice.cancel(run.run_id)
    gw = _gateway(make_gateway, tmp_path / "2", submit_rate_per_minute=1, submit_burst=2)
    with GatewayClient(gw.target, ALICE) as alice:
        alice.submit(tiny_spec())
        alice.submit(tiny_spec())
        code, detail = _code(alice.submit, tiny_spec())
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and detail["field"] == "submit_rate"
    quota = len(tiny_npz()) + 100
    gw = _gateway(make_gateway, tmp_path / "3", max_stored_bytes_per_user=quota)
    with GatewayClient(gw.target, ALICE) as alice, GatewayClient(gw.target, BOB) as bob:
        alice.upload_bytes(tiny_npz(), "a.npz")
        alice.upload_bytes(tiny_npz(), "again.npz")  # the same bytes again cost nothing
        import io

        import numpy as np
        other = io.BytesIO()
        np.savez(other, x=np.zeros((4, 8), np.float32), y=np.arange(4))
        code, detail = _code(alice.upload_bytes, other.getvalue(), "b.npz")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and detail["reason"] == "QUOTA_EXCEEDED"
        bob.upload_bytes(other.getvalue(), "b.npz")


# -- item 5: paged listings, records on demand --------------------------------------------------

def test_list_runs_pages_newest_first(make_gateway, tmp_path) -> None:
    gw = _gateway(make_gateway, tmp_path)
    with GatewayClient(gw.target, ALICE) as alice, GatewayClient(gw.target, BOB) as bob:
        ids = [alice.submit(tiny_spec(name=f"run{i}")).run_id for i in range(7)]
        bob.submit(tiny_spec())
        seen, token, pages = [], "", 0
        while True:
            page = alice.stub.ListRuns(gateway_pb2.ListRunsRequest(limit=3, page_token=token),
                                       metadata=alice.metadata)
            assert len(page.runs) <= 3
            seen += [r.run_id for r in page.runs]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert pages == 3 and seen == ids[::-1]
        assert [r.run_id for r in alice.list()] == ids[::-1] and len(alice.list(limit=2)) == 2
        code, detail = _code(alice.stub.ListRuns, gateway_pb2.ListRunsRequest(page_token="../x"),
                             metadata=alice.metadata)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and detail["field"] == "page_token"


class CountingStore(LocalStore):
    """A LocalStore that counts record reads."""

    reads = 0

    def get_json(self, key: str):
        if key.endswith("/record.json"):
            CountingStore.reads += 1
        return super().get_json(key)


def test_finished_runs_stay_in_the_store_not_in_memory(make_gateway, tmp_path) -> None:
    store = CountingStore(tmp_path / "store")
    gw = _gateway(make_gateway, tmp_path, store=store)
    with GatewayClient(gw.target, ALICE) as alice:
        ids = [alice.submit(tiny_spec()).run_id for _ in range(5)]
        for run_id in ids:
            assert alice.wait(run_id, timeout=60).state == gateway_pb2.RUN_STATE_FAILED
    assert not gw.manager.active_ids()  # no active run in memory
    gw.stop(0.5)
    CountingStore.reads = 0
    again = RunManager(store, gw.clients, Limits(), FAIL_FAST)
    again.start()
    assert CountingStore.reads == 0  # start-up read no finished record
    run = again.get("alice", ids[0])
    assert run.state == gateway_pb2.RUN_STATE_FAILED and CountingStore.reads == 1  # read on demand
    assert not again.active_ids()
    again.stop()


def test_a_store_without_index_is_indexed_once(tmp_path) -> None:
    store = LocalStore(tmp_path / "store")
    rec = {"run_id": "r-20260101-000000-0123abcd", "owner": "alice", "state": "succeeded", "created_at": 1.0,
           "name": "old", "stages": []}
    store.put_json(f"runs/{rec['run_id']}/record.json", rec, overwrite=True)
    from spiker_gateway.stages import StageClients

    clients = StageClients({s: f"127.0.0.1:{free_port()}" for s in ("trainer", "optimizer", "hdlgen", "simulator")})
    manager = RunManager(store, clients, Limits(), FAIL_FAST)
    manager.start()
    runs, token = manager.list("alice")
    assert [r.run_id for r in runs] == [rec["run_id"]] and token == ""
    assert manager.list("bob") == ([], "")
    manager.stop()
    clients.close()


# -- item 7: the state a client saw is the state that stays -------------------------------------

class FlakyStore(LocalStore):
    """A LocalStore that is "down" (an S3 outage) for writes of final run records while ``down`` is set."""

    down = threading.Event()

    def put_document(self, key: str, data: bytes, content_type: str = "application/octet-stream",
                     overwrite: bool = False):
        if self.down.is_set() and key.endswith("/record.json") and b'"state": "failed"' in data:
            raise StoreUnavailable("s3: connection refused (test outage)")
        return super().put_document(key, data, content_type, overwrite)


def test_a_final_state_is_shown_only_once_the_store_holds_it(make_gateway, tmp_path) -> None:
    store = FlakyStore(tmp_path / "store")
    policy = RetryPolicy(max_attempts=1, initial_delay=0.05, max_delay=0.2, budget_s=600)
    gw = _gateway(make_gateway, tmp_path, store=store, policy=policy)
    FlakyStore.down.set()  # the store is down when the run's failure is to be written
    try:
        with GatewayClient(gw.target, ALICE) as alice:
            run = alice.submit(tiny_spec())
            wait_for(lambda: gw.manager.active(run.run_id).record["stages"][0]["state"] == "failed", 30,
                     "the stage failure (services unreachable)")
            for _ in range(5):  # while the final write waits for the store, clients still see RUNNING
                assert alice.get(run.run_id).state == gateway_pb2.RUN_STATE_RUNNING
                assert store.get_json(f"runs/{run.run_id}/record.json")["state"] == "running"
            FlakyStore.down.clear()
            final = alice.wait(run.run_id, timeout=30)
            assert final.state == gateway_pb2.RUN_STATE_FAILED
            assert store.get_json(f"runs/{run.run_id}/record.json")["state"] == "failed"
    finally:
        FlakyStore.down.clear()


# -- item 10: retries by time -------------------------------------------------------------------

class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection refused"

    def trailing_metadata(self):
        return ()


class _Flaky:
    """A stage method that is UNAVAILABLE for its first ``failures`` calls, then returns a result."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, request, timeout=None):
        self.calls += 1
        return _Stream(self.calls <= self.failures)


class _Stream:
    """A server stream that fails on its first read (as gRPC's do), or yields one result."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def __iter__(self):
        if self.fail:
            raise _Unavailable()
        result = trainer_pb2.TrainResponse()
        result.result.epochs = 1
        yield result

    def cancel(self) -> None:
        pass


class _Clients:
    def __init__(self, method) -> None:
        self._method = method

    def method(self, stage):
        return self._method


def test_an_outage_within_the_time_budget_costs_the_run_nothing() -> None:
    assert RetryPolicy().budget_s >= 300
    quick = {"initial_delay": 0.001, "max_delay": 0.002}
    flaky = _Flaky(failures=40)  # 8 attempts used to be the end of the run
    result, attempts = call_stage(_Clients(flaky), "train", None, CallSlot(), RetryPolicy(**quick),
                                  lambda ev: None, lambda n: None)
    assert attempts == 41 and result.epochs == 1
    with pytest.raises(StageFailed) as info:  # past the budget: the error stands
        call_stage(_Clients(_Flaky(failures=10**9)), "train", None, CallSlot(),
                   RetryPolicy(**quick, budget_s=0.2), lambda ev: None, lambda n: None)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
