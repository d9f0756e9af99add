"""Issue 16, item 6: one runner per run, by a lease in the store, with two gateways on real S3 (SeaweedFS)."""

from __future__ import annotations

import threading
import time

import pytest
from gw_support import ALICE, free_port, tiny_spec, wait_for

from spiker.store import LocalStore, S3Store
from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.lease import Leases
from spiker_gateway.stages import RetryPolicy
from spiker_gateway.validate import Limits

#: unreachable services, a patient policy: runs stay RUNNING (retrying) until cancelled
PATIENT = RetryPolicy(max_attempts=1000, initial_delay=30.0, max_delay=30.0)
#: the two-gateway test's lease: long against its 2 s observation window (3 s was flaky under load)
LEASE_TTL = 12.0


@pytest.fixture
def s3_store(s3_server) -> S3Store:
    info = s3_server.make_bucket()
    return S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, info.secure)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_conditional_writes_are_compare_and_swap(backend, tmp_path, request) -> None:
    store = LocalStore(tmp_path / "store") if backend == "local" else request.getfixturevalue("s3_store")
    key = "runs/r-20260101-000000-0123abcd/lease.json"
    assert store.read_versioned(key) is None
    v1 = store.write_if(key, b"one", None)
    assert v1 and store.write_if(key, b"two", None) is None  # exists: a create loses
    assert store.write_if(key, b"two", "0" * 32) is None  # stale version loses
    v2 = store.write_if(key, b"two", v1)
    assert v2 and store.read_versioned(key) == (b"two", v2)
    assert store.write_if(key, b"three", v1) is None  # v1 is stale now


def test_a_lease_has_one_holder_expires_and_is_renewed(tmp_path) -> None:
    store = LocalStore(tmp_path / "store")
    now = [1000.0]
    a = Leases(store, "gw-a", ttl=10, clock=lambda: now[0])
    b = Leases(store, "gw-b", ttl=10, clock=lambda: now[0])
    run = "r-20260101-000000-0123abcd"
    assert a.acquire(run) and not b.acquire(run)
    now[0] += 8
    assert a.renew(run)
    now[0] += 8
    assert not b.acquire(run)  # renewed: still a's
    now[0] += 11
    assert b.acquire(run)  # expired: b takes over
    assert not a.renew(run)  # a learns it lost it
    b.release(run)
    assert a.acquire(run)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_gateways_on_one_s3_store_never_run_a_run_twice(make_gateway, s3_store) -> None:
    """A rolling update: gateway B starts beside A on the same store, then A stops; B takes A's runs over."""
    target = f"127.0.0.1:{free_port()}"
    limits = Limits(max_concurrent_runs=8)
    a = make_gateway(target, store=s3_store, limits=limits, policy=PATIENT, lease_ttl=LEASE_TTL)
    with GatewayClient(a.target, ALICE) as alice:
        runs = [alice.submit(tiny_spec(name=f"lease-{i}")).run_id for i in range(4)]
        wait_for(lambda: a.manager.running_ids() == set(runs), 30, "A runs all four")
    b = make_gateway(target, store=s3_store, limits=limits, policy=PATIENT, lease_ttl=LEASE_TTL)  # resumes them too
    overlap: list[set[str]] = []
    stop_sampling = threading.Event()

    def executing(manager, run_id: str) -> bool:  # past the lease (a gateway still acquiring, or refused, is not)
        handle = manager.active(run_id)
        return handle is not None and not handle.lost and handle.record.get("state") == "running"

    def sample() -> None:  # at no moment may both gateways run the same run
        while not stop_sampling.is_set():
            both = a.manager.running_ids() & b.manager.running_ids()
            both = {r for r in both if all(executing(m, r) for m in (a.manager, b.manager))}
            if both:
                overlap.append(both)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        time.sleep(2.0)  # well inside the lease (A renews every LEASE_TTL / 3), even on a loaded machine
        assert not b.manager.running_ids() & set(runs)  # A holds the leases: B runs none of them
        assert all(b.manager.leases.holder_of(r)[0] == a.manager.leases.holder for r in runs)
        a.stop(0.5)  # A goes away (its leases are released); B adopts its runs
        wait_for(lambda: all(executing(b.manager, r) for r in runs), 60, "B to take the runs over")  # past their leases
        assert all(b.manager.leases.holder_of(r)[0] == b.manager.leases.holder for r in runs)
    finally:
        stop_sampling.set()
        sampler.join(5)
    assert not overlap, f"run(s) ran on both gateways at once: {overlap[:3]}"
    with GatewayClient(b.target, ALICE) as alice:
        for run_id in runs:
            assert alice.cancel(run_id).state == gateway_pb2.RUN_STATE_CANCELLED
        assert {r.run_id for r in alice.list()} == set(runs)


def test_a_run_whose_lease_is_lost_leaves_this_gateways_runs(make_gateway, tmp_path) -> None:
    """Another gateway took the lease: this one forgets the run (GetRun reads the store; adoption sees it)."""
    store = LocalStore(tmp_path / "store")
    a = make_gateway(f"127.0.0.1:{free_port()}", store=store, policy=PATIENT, lease_ttl=1.5)
    with GatewayClient(a.target, ALICE) as alice:
        run_id = alice.submit(tiny_spec(name="lost")).run_id
        wait_for(lambda: run_id in a.manager.running_ids(), 30, "A runs it")
        other = Leases(store, "gw-other", ttl=3600, clock=lambda: time.time() + 60)  # A's lease looks expired
        wait_for(lambda: other.acquire(run_id), 30, "the other gateway to take the lease (A renews meanwhile)")
        wait_for(lambda: run_id not in a.manager.running_ids(), 30, "A to stop the run it lost")
        assert run_id not in a.manager.active_ids()
        assert alice.get(run_id).state in (gateway_pb2.RUN_STATE_QUEUED, gateway_pb2.RUN_STATE_RUNNING)  # store's


def test_watching_a_run_another_gateway_runs_follows_its_record_to_the_end(make_gateway, tmp_path,
                                                                           monkeypatch) -> None:
    """B's watcher of A's run sees its final state (not the unfinished record replayed as if final)."""
    import spiker_gateway.runs

    monkeypatch.setattr(spiker_gateway.runs, "FOLLOW_POLL_S", 0.2)
    store = LocalStore(tmp_path / "store")
    a = make_gateway(f"127.0.0.1:{free_port()}", store=store, policy=PATIENT)
    b = make_gateway(f"127.0.0.1:{free_port()}", store=store, policy=PATIENT)
    with GatewayClient(a.target, ALICE) as on_a, GatewayClient(b.target, ALICE) as on_b:
        run_id = on_a.submit(tiny_spec(name="followed")).run_id
        wait_for(lambda: run_id in a.manager.running_ids(), 30, "A runs it")
        events: list = []
        errors: list = []

        def follow() -> None:
            try:
                events.extend(on_b.watch(run_id, timeout=60))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        time.sleep(1.0)  # B polls the record meanwhile
        assert not events  # nothing final yet
        assert on_a.cancel(run_id).state == gateway_pb2.RUN_STATE_CANCELLED
        watcher.join(30)
    assert not errors, errors
    assert events and events[-1].WhichOneof("event") == "summary"
    assert events[-1].summary.state == gateway_pb2.RUN_STATE_CANCELLED
