"""Build and run a gRPC server hosting one or more stage services, with health and reflection.

Every server: binds ``host:port`` (default 127.0.0.1), serves ``grpc.health.v1`` (overall and
per service) and server reflection, caps request size (``grpc.max_receive_message_length``:
bigger requests fail with ``RESOURCE_EXHAUSTED``), runs at most ``max_jobs`` jobs at once with
up to ``max_queue`` more calls waiting (beyond that, ``RESOURCE_EXHAUSTED``), and on SIGTERM /
SIGINT stops taking calls, gives running ones ``grace`` seconds, then cancels them. With a service
token configured every call but health and reflection must carry it; every request is held to the
size limits (spiker_services/common/service_auth.py).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from spiker_api.limits import SERVICE_MAX_MESSAGE_BYTES, SizeLimits
from spiker_api.service_token import TOKEN_ENV, TOKEN_FILE_ENV, load_service_token
from spiker_services.common.jobserver import start_job_server
from spiker_services.common.runtime import Runtime
from spiker_services.common.service_auth import ServiceGuard

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_GRACE_S = 10.0
#: threads kept free of jobs for health checks, reflection and unary calls
SPARE_THREADS = 4


@dataclass(frozen=True)
class ServiceEntry:
    """How to add one stage service to a server."""

    name: str
    full_name: str
    make: Callable[[Runtime], Any]
    add: Callable[[Any, grpc.Server], None]


class StageServer:
    """A started gRPC server: ``port``, ``runtime``, ``health``; :meth:`stop` shuts it down."""

    def __init__(self, server: grpc.Server, port: int, runtime: Runtime, health_servicer: Any,
                 full_names: list[str]) -> None:
        self.server = server
        self.port = port
        self.runtime = runtime
        self.health = health_servicer
        self.full_names = full_names

    def stop(self, grace: float | None = DEFAULT_GRACE_S) -> threading.Event:
        """Stop: health NOT_SERVING, no new calls, running calls get ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        return self.server.stop(grace)

    def wait(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def build_server(services: Sequence[ServiceEntry], runtime: Runtime, host: str = DEFAULT_HOST, port: int = 0,
                 max_message_bytes: int = SERVICE_MAX_MESSAGE_BYTES, max_queue: int = 16,
                 service_token: str | None = None, limits: SizeLimits | None = None) -> StageServer:
    """Create, bind and start a server for ``services`` (``port=0``: an ephemeral port).

    The services are given, not looked up: which servicers exist is the composition root's to
    say (spiker_app/services.py), so this module imports none of them.

    ``service_token``: the secret callers must present (default: ``$SPIKER_SERVICE_TOKEN_FILE`` /
    ``$SPIKER_SERVICE_TOKEN``; none configured: any caller, with a warning off loopback).
    ``limits``: request size limits (default: :meth:`SizeLimits.from_env`).
    """
    token = service_token if service_token is not None else load_service_token()
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("stage services on %s accept calls from anyone: set %s (or %s) here and on the gateway",
                    host, TOKEN_FILE_ENV, TOKEN_ENV)
    guard = ServiceGuard(token, limits or SizeLimits.from_env())
    if not services:
        raise ValueError("a stage server needs at least one service")
    threads = runtime.max_jobs + max_queue + SPARE_THREADS
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spiker-rpc"),
                         options=options, maximum_concurrent_rpcs=threads, interceptors=[guard])
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    full_names = []
    for entry in {e.name: e for e in services}.values():
        entry.add(entry.make(runtime), server)
        full_names.append(entry.full_name)
    reflection.enable_server_reflection([*full_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    start_job_server()
    server.start()
    for full in ["", *full_names]:
        health_servicer.set(full, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on %s:%d (store %r, %d job(s) at once, %d queued at most)",
             ", ".join(full_names), host, bound, runtime.store, runtime.max_jobs, max_queue)
    return StageServer(server, bound, runtime, health_servicer, full_names)


def run_until_signal(stage_server: StageServer, grace: float = DEFAULT_GRACE_S) -> None:
    """Block until SIGTERM/SIGINT (main thread only), then stop gracefully."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping (grace %.0fs)", signal.Signals(signum).name, grace)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.wait(0.5):
            pass
        stage_server.stop(grace).wait()
        log.info("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
