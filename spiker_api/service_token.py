"""How a caller authenticates to the stage services: the shared secret and a channel that sends it.

The secret comes from ``$SPIKER_SERVICE_TOKEN_FILE`` (a file, e.g. a mounted Kubernetes Secret)
or ``$SPIKER_SERVICE_TOKEN``; it has at least 32 characters. Callers (the gateway) wrap their
channels with :func:`authorized_channel`; the services check it (spiker_services/common/service_auth.py).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

TOKEN_ENV = "SPIKER_SERVICE_TOKEN"
TOKEN_FILE_ENV = "SPIKER_SERVICE_TOKEN_FILE"
MIN_LENGTH = 32


def load_service_token(env: Mapping[str, str] | None = None) -> str | None:
    """The shared secret of the stage services, or None when none is configured."""
    env = os.environ if env is None else env
    path = env.get(TOKEN_FILE_ENV, "").strip()
    if path:
        token = Path(path).read_text().strip()
        source = path
    else:
        token = env.get(TOKEN_ENV, "").strip()
        source = TOKEN_ENV
    if not token:
        return None
    if len(token) < MIN_LENGTH or any(c.isspace() for c in token):
        raise ValueError(f"{source}: the service token must be one word of at least {MIN_LENGTH} characters")
    return token


class _ClientCallDetails(collections.namedtuple(
        "_ClientCallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                         grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        metadata = [m for m in (details.metadata or ()) if m[0].lower() != "authorization"]
        metadata.append(self._header)
        return _ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                  getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):  # noqa: ANN001, ANN201, D102
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # noqa: ANN001, ANN201, D102
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # noqa: ANN001, ANN201, D102
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # noqa: ANN001, ANN201, D102
        return continuation(self._details(details), requests)


def authorized_channel(channel: grpc.Channel, token: str | None) -> grpc.Channel:
    """``channel`` sending the service token with every call (unchanged when there is none)."""
    return grpc.intercept_channel(channel, _BearerInterceptor(token)) if token else channel
