"""Errors raised by the artifact store; all derive from :class:`spiker.errors.SpikerError`.

Services map them to gRPC status codes: :class:`ArtifactNotFound` -> ``NOT_FOUND``,
:class:`StoreUnavailable` -> ``UNAVAILABLE``, :class:`InvalidKeyError` -> ``INVALID_ARGUMENT``,
:class:`ImmutableObjectError` -> ``ALREADY_EXISTS``, :class:`IntegrityError` -> ``DATA_LOSS``,
:class:`StoreConfigError` -> ``FAILED_PRECONDITION``.
"""

from __future__ import annotations

from spiker.errors import SpikerError


class StoreError(SpikerError):
    """Base class of every error the artifact store raises on purpose."""


class StoreConfigError(StoreError, ValueError):
    """The store is configured wrongly (bad env var, missing bucket, rejected credentials).

    ``setting`` names the offending setting, e.g. ``SPIKER_S3_SECURE`` or ``bucket``.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = message
        super().__init__(f"{setting}: {message}")


class StoreUnavailable(StoreError, ConnectionError):
    """The store cannot be reached (server down, connection refused, timeout, 5xx)."""


class ArtifactNotFound(StoreError, KeyError):
    """No object exists under ``key`` (in ``bucket``)."""

    def __init__(self, key: str, bucket: str = "") -> None:
        self.key = key
        self.bucket = bucket
        where = f"{bucket}/{key}" if bucket else key
        super().__init__(f"no object at {where!r}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class IntegrityError(StoreError):
    """The bytes read back do not match the sha256/size recorded for them (corruption)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class ImmutableObjectError(StoreError):
    """A write would replace an existing object with different bytes."""

    def __init__(self, key: str, message: str = "") -> None:
        self.key = key
        super().__init__(
            f"{key}: object already exists with different content"
            + (f" ({message})" if message else "")
            + "; objects are immutable (named documents may pass overwrite=True)"
        )


class InvalidKeyError(StoreError, ValueError):
    """A key is not a valid store key (absolute, '..', empty segment, odd characters)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid store key {key!r}: {reason}")
