"""One runner per run: a lease document in the store, taken and renewed by compare-and-swap.

``runs/<run-id>/lease.json`` says which gateway runs the run and until when. A gateway takes the
lease before it runs a run (absent, expired or already its own), renews it every ``ttl / 3``
seconds while the run runs, and releases it when the run ends or the gateway stops. Two gateways on
one store (a rolling update) therefore never run the same run at once; a run whose gateway died is
taken over once its lease expires. Writes are conditional (``ArtifactStore.write_if``): S3
``If-None-Match``/``If-Match``, a lock file on the local store.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable

from spiker.store import ArtifactStore, StoreError
from spiker_gateway.report import run_prefix

log = logging.getLogger(__name__)

DEFAULT_TTL = 30.0


def lease_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}/lease.json"


def new_holder() -> str:
    """A name for this gateway process: host, and a random suffix (two gateways on one host differ)."""
    return f"{socket.gethostname()[:40]}-{secrets.token_hex(4)}"


class Leases:
    """The leases this gateway (``holder``) holds; every method may raise StoreError."""

    def __init__(self, store: ArtifactStore, holder: str | None = None, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.holder = holder or new_holder()
        self.ttl = ttl
        self._clock = clock
        self._held: dict[str, str] = {}  # run id -> version of our lease document
        self._lock = threading.Lock()

    def _doc(self, expires: float) -> bytes:
        return json.dumps({"holder": self.holder, "expires_at": expires}, sort_keys=True).encode()

    def holder_of(self, run_id: str) -> tuple[str, float] | None:
        """``(holder, expires_at)`` of the run's lease, or None when there is none."""
        current = self.store.read_versioned(lease_key(run_id))
        if current is None:
            return None
        try:
            doc = json.loads(current[0])
            return str(doc["holder"]), float(doc["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None

    def free(self, run_id: str) -> bool:
        """Whether nobody holds a live lease on the run (this gateway's own lease counts as free)."""
        held = self.holder_of(run_id)
        return held is None or held[0] == self.holder or held[1] <= self._clock()

    def acquire(self, run_id: str) -> bool:
        """Take the run's lease if it is absent, expired or ours; False when another gateway holds it."""
        key = lease_key(run_id)
        current = self.store.read_versioned(key)
        version = None
        if current is not None:
            version = current[1]
            try:
                doc = json.loads(current[0])
                holder, expires = str(doc["holder"]), float(doc["expires_at"])
            except (ValueError, KeyError, TypeError):
                holder, expires = "", 0.0  # unreadable: treat as expired
            if holder != self.holder and expires > self._clock():
                return False
        new = self.store.write_if(key, self._doc(self._clock() + self.ttl), version)
        if new is None:  # another gateway wrote first
            return False
        with self._lock:
            self._held[run_id] = new
        return True

    def renew(self, run_id: str) -> bool:
        """Extend our lease; False (and forgotten) when it is no longer ours."""
        with self._lock:
            version = self._held.get(run_id)
        if version is None:
            return False
        new = self.store.write_if(lease_key(run_id), self._doc(self._clock() + self.ttl), version)
        with self._lock:
            if new is None:
                self._held.pop(run_id, None)
                return False
            self._held[run_id] = new
        return True

    def release(self, run_id: str) -> None:
        """Give the lease up (an expired lease of ours), so another gateway may take it at once."""
        with self._lock:
            version = self._held.pop(run_id, None)
        if version is None:
            return
        try:
            self.store.write_if(lease_key(run_id), self._doc(0.0), version)
        except StoreError as exc:  # it expires by itself
            log.warning("run %s: lease not released: %s", run_id, exc)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)
