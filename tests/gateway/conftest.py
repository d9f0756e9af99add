"""Fixtures of the gateway tests: stores, in-process stage services and gateways on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_support import TOKENS, free_port

from spiker.store import LocalStore
from spiker_gateway.server import GatewayServer, all_targets, build_gateway
from spiker_gateway.stages import RetryPolicy
from spiker_gateway.validate import Limits

FAST_RETRY = RetryPolicy(max_attempts=8, initial_delay=0.2, max_delay=2.0)


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    return LocalStore(tmp_path_factory.mktemp("gw-store"))


@pytest.fixture(scope="session")
def services(session_store: LocalStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The four stage services in this process on one ephemeral port; yields host:port."""
    from spiker_app.services import SERVICE_NAMES, build_stage_server
    from spiker_services.common.runtime import Runtime

    runtime = Runtime(session_store, max_jobs=2, work_root=tmp_path_factory.mktemp("gw-work"))
    server = build_stage_server(SERVICE_NAMES, runtime, port=0)
    yield f"127.0.0.1:{server.port}"
    server.stop(0).wait(10)


@pytest.fixture
def make_gateway(session_store: LocalStore) -> Iterator:
    """Factory: ``make_gateway(target, store=..., limits=..., policy=...)``; all stopped afterwards."""
    started: list[GatewayServer] = []

    def make(target: str, store=None, limits: Limits | None = None, policy: RetryPolicy | None = None,
             **kwargs) -> GatewayServer:
        gw = build_gateway(store or session_store, all_targets(target), TOKENS, limits=limits,
                           policy=policy or FAST_RETRY, **kwargs)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop(0.5)


@pytest.fixture
def offline_gateway(make_gateway, tmp_path: Path) -> GatewayServer:
    """A gateway whose stage services are unreachable (runs fail fast): for API and security tests."""
    return make_gateway(f"127.0.0.1:{free_port()}", store=LocalStore(tmp_path / "store"),
                        limits=Limits(max_upload_bytes=64 * 1024, max_neurons=512),
                        policy=RetryPolicy(max_attempts=1))


@pytest.fixture(scope="session")
def finished_runs(session_store: LocalStore, services: str) -> Iterator[tuple[GatewayServer, str, str]]:
    """A gateway on the session's services with one finished tiny run each of alice and bob:
    ``(gateway, alice_run_id, bob_run_id)`` (for the download and web tests)."""
    from gw_support import ALICE, BOB, tiny_npz, tiny_spec

    from spiker_gateway.client import GatewayClient

    gw = build_gateway(session_store, all_targets(services), TOKENS, policy=FAST_RETRY)
    try:
        ids = []
        sweep = {"optimize": {"weights_bw": {"min": 5, "max": 6}, "neurons_bw": {"min": 8, "max": 8},
                              "fp_dec": {"min": 3, "max": 3}}, "select": {"max_accuracy_drop": 1.0}}
        for token, name, sections in ((ALICE, "alice-tiny", sweep), (BOB, "bob-tiny", {})):
            with GatewayClient(gw.target, token) as client:
                ref = client.upload_bytes(tiny_npz(), "tiny.npz")
                spec = tiny_spec(ref.sha256, name=name, **sections)  # alice's run sweeps 2 configs
                run = client.wait(client.submit(spec).run_id, timeout=600)
                assert run.report_json, run
                ids.append(run.run_id)
        yield gw, ids[0], ids[1]
    finally:
        gw.stop(0.5)
