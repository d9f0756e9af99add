"""Build and run the gateway server (health, reflection, optional TLS).

:func:`build_gateway` starts a gateway on ``host:port`` (0: ephemeral) that calls the stage
services at ``targets``. The one-process stack of ``spiker run`` (services and gateway together)
is the composition root's: :class:`spiker_app.local.LocalStack`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from spiker.store import ArtifactStore
from spiker_gateway.auth import TokenAuth
from spiker_gateway.lease import DEFAULT_TTL
from spiker_gateway.runs import RunManager
from spiker_gateway.servicer import SERVICE_NAME, GatewayServicer, add_to_server
from spiker_gateway.stages import SERVICE_OF, RetryPolicy, StageClients
from spiker_gateway.validate import Limits

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: largest request the gateway accepts (upload chunks and spec texts are far smaller); its own cap,
#: not spiker_api.limits.SERVICE_MAX_MESSAGE_BYTES: that one bounds the stage services' messages,
#: this one what users send the gateway, and either can change without the other
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
UPLOAD_CHUNK = 1024 * 1024


class EventLoopThread:
    """An asyncio event loop running in its own daemon thread (the gateway's gRPC server lives on it)."""

    def __init__(self, name: str = "gateway-aio") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop (calls cut off by a stop), then stop and close it."""
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        if self.loop.is_closed():
            return
        try:
            self.run(cancel_all(), timeout + 1)
        except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class GatewayServer:
    """A running gateway: the gRPC server (grpc.aio, on its own loop thread), its port and the run manager.

    Streams (``WatchRun``) are coroutines on the loop and cost no thread; unary calls and uploads
    run in a pool of ``max_workers`` threads, so many open streams never starve them.
    """

    server: grpc.aio.Server
    port: int
    manager: RunManager
    health: Any
    clients: StageClients
    host: str = DEFAULT_HOST
    auth: TokenAuth | None = None
    loop: EventLoopThread | None = None
    pool: futures.ThreadPoolExecutor | None = None
    servicer: GatewayServicer | None = None
    #: a plaintext server with the health service only (kubelet gRPC probes cannot speak TLS)
    health_server: grpc.aio.Server | None = None
    health_port: int = 0

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace: float = 2.0) -> None:
        """Stop taking calls, stop running stages (records stay resumable), close the channels (once)."""
        assert self.loop is not None
        if self.loop.loop.is_closed() or not self.loop.thread.is_alive():
            return
        try:
            self.loop.run(self.health.enter_graceful_shutdown(), 5)
        except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
            pass
        self.manager.stop()
        try:
            if self.health_server is not None:
                self.loop.run(self.health_server.stop(0), 5)
            self.loop.run(self.server.stop(grace), grace + 5)
        except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
            log.warning("gateway on port %d did not stop within %.0fs", self.port, grace + 5)
        self.loop.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.clients.close()


def build_gateway(store: ArtifactStore, targets: Mapping[str, str], tokens: Mapping[str, str] | TokenAuth,
                  host: str = DEFAULT_HOST, port: int = 0, limits: Limits | None = None,
                  policy: RetryPolicy | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                  max_workers: int = 64, resume: bool = True, service_token: str | None = None,
                  lease_ttl: float = DEFAULT_TTL, health_port: int | None = None) -> GatewayServer:
    """Start a gateway; ``targets`` maps each service (trainer, optimizer, hdlgen, simulator) to host:port.

    ``resume``: queue the store's unfinished runs again (a served gateway); ``spiker run`` passes
    False so that it runs only its own run. ``tokens``: a table, or a reloadable :class:`TokenAuth`.
    ``max_workers``: threads for unary calls and uploads (streams need none). ``lease_ttl``: seconds a
    run's lease lasts unrenewed (another gateway takes an orphaned run over after that).
    ``health_port``: also serve ``grpc.health.v1`` alone, in plaintext, on this port (for probes of a
    TLS gateway; 0: any free port). ``service_token``: the
    stage services' shared secret (default: ``$SPIKER_SERVICE_TOKEN_FILE`` / ``$SPIKER_SERVICE_TOKEN``).
    """
    limits = limits or Limits()
    auth = tokens if isinstance(tokens, TokenAuth) else TokenAuth(tokens)
    if (tls_cert or tls_key) and not (tls_cert and tls_key):
        raise ValueError("give both --tls-cert and --tls-key")
    clients = StageClients(dict(targets), service_token=service_token)
    manager = RunManager(store, clients, limits, policy, lease_ttl=lease_ttl)
    servicer = GatewayServicer(manager, auth, store, limits)
    loop = EventLoopThread()
    pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gateway")
    address = f"{host}:{port}"

    async def create() -> tuple[grpc.aio.Server, Any, int, grpc.aio.Server | None, int]:
        server = grpc.aio.server(migration_thread_pool=pool,
                                 options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                          ("grpc.so_reuseport", 0)])
        add_to_server(servicer, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        if tls_cert and tls_key:
            creds = grpc.ssl_server_credentials([(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())])
            bound = server.add_secure_port(address, creds)
        else:
            bound = server.add_insecure_port(address)
        probe, probe_port = None, 0
        if health_port is not None:
            probe = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probe)
            probe_port = probe.add_insecure_port(f"{host}:{health_port}")
        return server, health_servicer, bound, probe, probe_port

    try:
        server, health_servicer, bound, probe, probe_port = loop.run(create(), 30)
        if bound == 0 or (probe is not None and probe_port == 0):
            raise OSError(f"cannot bind {address}" + (f" or health port {health_port}" if probe else ""))
    except BaseException:
        loop.close()
        pool.shutdown(wait=False)
        clients.close()
        raise
    manager.start(resume=resume)
    loop.run(server.start(), 30)
    if probe is not None:
        loop.run(probe.start(), 30)

    async def serving() -> None:
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    loop.run(serving(), 10)
    log.info("gateway on %s:%d%s (store %r, services %s, %d run(s) at once)", host, bound,
             " with TLS" if tls_cert else "", store, dict(targets), limits.max_concurrent_runs)
    return GatewayServer(server, bound, manager, health_servicer, clients, host, auth, loop, pool, servicer,
                         probe, probe_port)


def all_targets(target: str) -> dict[str, str]:
    """Every stage service at one address (``spiker serve all``)."""
    return {name: target for name in SERVICE_OF.values()}
