"""Artifact store: content-addressed immutable artifacts and run records, on S3 or a local directory.

    from spiker.store import open_store
    store = open_store()                  # S3 if SPIKER_S3_ENDPOINT is set, else ~/.spiker/store
    ref = store.put_bytes(b"...", kind="net_dict")
    data = store.get_bytes(ref)           # sha256-verified
    store.put_json(f"runs/{run_id}/status.json", {"state": "running"}, overwrite=True)

See docs/store.md for the environment variables and the key layout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from spiker.store.base import (
    ARTIFACT_PREFIX,
    RUNS_PREFIX,
    ArtifactRef,
    ArtifactStore,
    artifact_key,
    validate_key,
)
from spiker.store.errors import (
    ArtifactNotFound,
    ImmutableObjectError,
    IntegrityError,
    InvalidKeyError,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)
from spiker.store.local import LocalStore
from spiker.store.s3 import S3Store

logger = logging.getLogger(__name__)

DEFAULT_BUCKET = "spiker"
DEFAULT_LOCAL_ROOT = "~/.spiker/store"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_bool(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise StoreConfigError(name, f"must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


def open_store(root: str | os.PathLike[str] | None = None, *, create_bucket: bool = False) -> ArtifactStore:
    """The store this process should use, chosen from the environment.

    If ``SPIKER_S3_ENDPOINT`` is set: an :class:`S3Store` from ``SPIKER_S3_ENDPOINT``,
    ``SPIKER_S3_ACCESS_KEY``, ``SPIKER_S3_SECRET_KEY``, ``SPIKER_S3_BUCKET`` (default ``spiker``),
    ``SPIKER_S3_SECURE`` (TLS; default on unless the endpoint says ``http://``) and optional
    ``SPIKER_S3_REGION``; ``root`` is ignored. Otherwise a :class:`LocalStore` at ``root``, else
    ``SPIKER_STORE_DIR``, else ``~/.spiker/store``.
    """
    endpoint = os.environ.get("SPIKER_S3_ENDPOINT", "").strip()
    if endpoint:
        access = os.environ.get("SPIKER_S3_ACCESS_KEY") or None
        secret = os.environ.get("SPIKER_S3_SECRET_KEY") or None
        if bool(access) != bool(secret):
            missing = "SPIKER_S3_SECRET_KEY" if access else "SPIKER_S3_ACCESS_KEY"
            raise StoreConfigError(missing, "is unset; set both access and secret key, or neither")
        if not access:
            logger.warning("store: SPIKER_S3_ACCESS_KEY unset, using anonymous access to %s", endpoint)
        bucket = os.environ.get("SPIKER_S3_BUCKET", "").strip() or DEFAULT_BUCKET
        store: ArtifactStore = S3Store(
            endpoint, access, secret, bucket, _env_bool("SPIKER_S3_SECURE"),
            region=os.environ.get("SPIKER_S3_REGION") or None, create_bucket=create_bucket,
        )
    else:
        where = root if root is not None else (os.environ.get("SPIKER_STORE_DIR") or DEFAULT_LOCAL_ROOT)
        store = LocalStore(Path(where).expanduser())
    logger.debug("store: using %r", store)
    return store


__all__ = [
    "ARTIFACT_PREFIX", "RUNS_PREFIX", "ArtifactNotFound", "ArtifactRef", "ArtifactStore",
    "ImmutableObjectError", "IntegrityError", "InvalidKeyError", "LocalStore", "S3Store",
    "StoreConfigError", "StoreError", "StoreUnavailable", "artifact_key", "open_store", "validate_key",
]
