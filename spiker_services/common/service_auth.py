"""Stage services authenticate their caller with a shared secret, and enforce the size limits.

The secret comes from ``$SPIKER_SERVICE_TOKEN_FILE`` (a file, e.g. a mounted Kubernetes Secret)
or ``$SPIKER_SERVICE_TOKEN``; it has at least 32 characters. A server built with a secret
refuses every call without ``authorization: Bearer <secret>`` (``UNAUTHENTICATED``) except health
checks and reflection; the gateway's channels add the header (:func:`authorized_channel`).
Every call, authenticated or not, is checked against :class:`~spiker_services.common.limits.SizeLimits`.
"""

from __future__ import annotations

import collections
import hmac
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from spiker_services.common.errors import FieldError, abort, describe_error
from spiker_services.common.limits import SizeLimits, check_request

log = logging.getLogger(__name__)

TOKEN_ENV = "SPIKER_SERVICE_TOKEN"
TOKEN_FILE_ENV = "SPIKER_SERVICE_TOKEN_FILE"
MIN_LENGTH = 32
#: methods anyone may call (probes, generic tools)
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


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


def _wrap(handler: grpc.RpcMethodHandler, check: Callable[[Any, Any], None]) -> grpc.RpcMethodHandler:
    """``handler`` whose behaviour first runs ``check(request_or_None, context)`` (which may abort)."""
    if handler.unary_unary:
        inner = handler.unary_unary

        def unary_unary(request: Any, context: Any) -> Any:
            check(request, context)
            return inner(request, context)
        return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer,
                                                   handler.response_serializer)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        def unary_stream(request: Any, context: Any) -> Any:
            check(request, context)
            yield from inner_us(request, context)
        return grpc.unary_stream_rpc_method_handler(unary_stream, handler.request_deserializer,
                                                    handler.response_serializer)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        def stream_unary(requests: Any, context: Any) -> Any:
            check(None, context)
            return inner_su(requests, context)
        return grpc.stream_unary_rpc_method_handler(stream_unary, handler.request_deserializer,
                                                    handler.response_serializer)
    inner_ss = handler.stream_stream

    def stream_stream(requests: Any, context: Any) -> Any:
        check(None, context)
        yield from inner_ss(requests, context)
    return grpc.stream_stream_rpc_method_handler(stream_stream, handler.request_deserializer,
                                                 handler.response_serializer)


class ServiceGuard(grpc.ServerInterceptor):
    """Checks the caller's secret (when one is configured) and the request's size limits."""

    def __init__(self, token: str | None, limits: SizeLimits | None = None) -> None:
        self.token = token
        self.limits = limits or SizeLimits()

    def _authorized(self, metadata: Any) -> bool:
        if self.token is None:
            return True
        for key, value in metadata or ():
            if key.lower() == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                scheme, _, given = text.strip().partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                           self.token.encode())
        return False

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        authorized = self._authorized(details.invocation_metadata)
        limits = self.limits

        def check(request: Any, context: Any) -> None:
            if not authorized:
                log.info("rejected %s from %s: no valid service token", details.method, context.peer())
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "stage services need 'authorization: Bearer <service token>' "
                              f"(${TOKEN_FILE_ENV} or ${TOKEN_ENV} of the gateway)")
            if request is not None:
                try:
                    check_request(request, limits)
                except FieldError as exc:
                    abort(context, describe_error(exc))

        return _wrap(handler, check)


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
