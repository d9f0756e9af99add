"""Serve the run browser with uvicorn on its own port, in a thread of the gateway process."""

from __future__ import annotations

import logging
import threading
import time

from spiker.store import ArtifactStore
from spiker_gateway.auth import TokenAuth
from spiker_gateway.runs import RunManager

log = logging.getLogger(__name__)

#: connections and requests the run browser serves at once (more get 503): page handlers run in
#: a bounded thread pool, so the browser cannot take the gateway's threads or memory
MAX_CONNECTIONS = 64


class WebServer:
    """A running uvicorn server; ``url`` is where the browser goes."""

    def __init__(self, server: object, thread: threading.Thread, host: str, port: int,
                 scheme: str = "http") -> None:
        self._server = server
        self.scheme = scheme
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True  # type: ignore[attr-defined]
        self._thread.join(timeout)


def start_web(manager: RunManager, auth: TokenAuth, store: ArtifactStore, host: str = "127.0.0.1",
              port: int = 0, timeout: float = 30.0, certfile: str | None = None,
              keyfile: str | None = None) -> WebServer:
    """Start the run browser on ``host:port`` (0: a free port); returns once it accepts connections.

    With ``certfile``/``keyfile`` it serves HTTPS and the session cookie is marked Secure.
    """
    import uvicorn

    from spiker_gateway.web.app import create_app

    tls = bool(certfile and keyfile)
    config = uvicorn.Config(create_app(manager, auth, store, https_only=tls), host=host, port=port,
                            log_level="warning", lifespan="off", access_log=False, server_header=False,
                            limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5,
                            ssl_certfile=certfile if tls else None, ssl_keyfile=keyfile if tls else None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise OSError(f"web run browser: cannot serve on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    log.info("web run browser on %s://%s:%d", scheme, host, bound)
    return WebServer(server, thread, host, bound, scheme)
