"""Stage services authenticate their caller with a shared secret, and enforce the size limits.

The secret is :func:`spiker_api.service_token.load_service_token`'s. A server built with a secret
refuses every call without ``authorization: Bearer <secret>`` (``UNAUTHENTICATED``) except health
checks and reflection; the gateway's channels add the header
(:func:`spiker_api.service_token.authorized_channel`).
Every call, authenticated or not, is checked against :class:`~spiker_api.limits.SizeLimits`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import grpc

from spiker_api.errors import FieldError, abort, describe_error
from spiker_api.limits import SizeLimits, check_request
from spiker_api.service_token import TOKEN_ENV, TOKEN_FILE_ENV

log = logging.getLogger(__name__)

#: methods anyone may call (probes, generic tools)
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


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
