"""Issue 16, item 2: open WatchRun streams hold no thread; health and GetRun answer while 200 are open."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gw_support import ALICE, BOB, free_port, tiny_spec, wait_for

from spiker.store import LocalStore
from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.stages import RetryPolicy

N_STREAMS = 200


@pytest.mark.timeout(180)
def test_200_watch_streams_hold_no_threads_and_unary_calls_still_answer(make_gateway, tmp_path) -> None:
    # unreachable services and a patient retry policy: the run stays RUNNING while we watch it
    gw = make_gateway(f"127.0.0.1:{free_port()}", store=LocalStore(tmp_path / "store"),
                      policy=RetryPolicy(max_attempts=1000, initial_delay=30.0, max_delay=30.0), max_workers=16)
    with GatewayClient(gw.target, ALICE) as alice, GatewayClient(gw.target, BOB) as bob:
        run = alice.submit(tiny_spec())
        wait_for(lambda: alice.get(run.run_id).state == gateway_pb2.RUN_STATE_RUNNING, 30, "a running run")
        threads_before = threading.active_count()
        streams = [alice.watch(run.run_id) for _ in range(N_STREAMS)]
        try:
            for stream in streams:  # every stream is served: each delivers the run's first event
                assert next(stream).WhichOneof("event") == "state_change"
            threads_open = threading.active_count()
            health = health_pb2_grpc.HealthStub(bob.channel)
            latencies = []
            for _ in range(5):
                start = time.monotonic()
                assert health.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == \
                    health_pb2.HealthCheckResponse.SERVING
                assert alice.get(run.run_id, timeout=1.0).state == gateway_pb2.RUN_STATE_RUNNING
                assert bob.list(timeout=1.0) == []  # another user's call
                latencies.append(time.monotonic() - start)
            print(f"{N_STREAMS} open streams: threads {threads_before} -> {threads_open}; "
                  f"health + GetRun + ListRuns round {max(latencies) * 1000:.0f} ms at most")
            # a thread per stream would add 200 (the old server had 64 workers and froze at 65 streams)
            assert threads_open - threads_before < 50
        finally:
            for stream in streams:
                stream.cancel()
        final = alice.cancel(run.run_id)
        assert final.state == gateway_pb2.RUN_STATE_CANCELLED
        # the cancelled streams were released: a new watcher sees the summary and ends
        events = list(alice.watch(run.run_id, timeout=10))
        assert events[-1].WhichOneof("event") == "summary"
        with pytest.raises(grpc.RpcError) as info:
            list(bob.watch(run.run_id, timeout=10))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
