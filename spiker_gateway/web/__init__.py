"""The gateway's web run browser (Starlette + Jinja2, served by uvicorn in the gateway process)."""

from spiker_gateway.web.server import WebServer, start_web

__all__ = ["WebServer", "start_web"]
