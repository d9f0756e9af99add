"""The run index in the store: which runs each user has, and which are final, without reading records.

Keys (small JSON documents beside the records)::

    index/runs/by-owner/<owner>/<created µs, 17 digits>.<run-id>.json   one per run, written at submit
    index/runs/final/<run-id>.json                                     written once the run is final
    index/runs/v1.json                                                 the index covers every record

A gateway starts by listing ``index/runs/`` (keys only) and reads the records of unfinished runs
alone; ``ListRuns`` pages through one owner's keys, newest first. A store written before the
index existed is indexed once, on the first start.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from spiker.store import ArtifactStore, StoreError

log = logging.getLogger(__name__)

PREFIX = "index/runs/"
BY_OWNER = PREFIX + "by-owner/"
FINAL = PREFIX + "final/"
#: the states a run ends in (the one definition: runs, gc and the index use it)
FINAL_STATES = ("succeeded", "failed", "cancelled")
MARKER = PREFIX + "v1.json"
#: a page token: the last index entry name of the previous page
_ENTRY_RE = re.compile(r"(\d{17})\.(r-\d{8}-\d{6}-[0-9a-f]{8})")


@dataclass(frozen=True)
class Entry:
    """One run in the index."""

    owner: str
    run_id: str
    name: str  # the entry name, ``<created µs>.<run-id>``: sorts by creation time


def entry_name(run_id: str, created_at: float) -> str:
    return f"{int(created_at * 1_000_000):017d}.{run_id}"


def owner_key(owner: str, run_id: str, created_at: float) -> str:
    return f"{BY_OWNER}{owner}/{entry_name(run_id, created_at)}.json"


def final_key(run_id: str) -> str:
    return f"{FINAL}{run_id}.json"


def valid_page_token(token: str) -> bool:
    return token == "" or bool(_ENTRY_RE.fullmatch(token))


class RunIndex:
    """Reads and writes the run index of one store (every call may raise StoreError)."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def add(self, owner: str, run_id: str, created_at: float) -> None:
        self.store.put_json(owner_key(owner, run_id, created_at), {"owner": owner, "run_id": run_id,
                                                                   "created_at": created_at})

    def finish(self, run_id: str, state: str) -> None:
        """Mark ``run_id`` final (its record already says so)."""
        self.store.put_json(final_key(run_id), {"run_id": run_id, "state": state, "at": time.time()},
                            overwrite=True)

    def entries(self, owner: str) -> list[Entry]:
        """The owner's runs, newest first."""
        prefix = f"{BY_OWNER}{owner}/"
        out = []
        for key in self.store.list(prefix):
            m = _ENTRY_RE.fullmatch(key[len(prefix):].removesuffix(".json"))
            if m:
                out.append(Entry(owner, m.group(2), m.group(0)))
        out.sort(key=lambda e: e.name, reverse=True)
        return out

    def page(self, owner: str, size: int, token: str = "") -> tuple[list[Entry], str]:
        """One page of the owner's runs after ``token``, and the token of the next page ("" at the end)."""
        entries = self.entries(owner)
        if token:
            entries = [e for e in entries if e.name < token]
        page = entries[:size]
        return page, (page[-1].name if len(entries) > size else "")

    def scan(self) -> tuple[dict[str, str], set[str]]:
        """``(run id -> owner for every indexed run, ids of final runs)`` from one listing."""
        owners: dict[str, str] = {}
        finals: set[str] = set()
        for key in self.store.list(PREFIX):
            if key.startswith(BY_OWNER):
                owner, _, name = key[len(BY_OWNER):].rpartition("/")
                m = _ENTRY_RE.fullmatch(name.removesuffix(".json"))
                if m:
                    owners[m.group(2)] = owner
            elif key.startswith(FINAL):
                finals.add(key[len(FINAL):].removesuffix(".json"))
        return owners, finals

    def ensure(self, record_keys: Any) -> None:
        """Index a store written before the index existed (``record_keys()``: every record key), once."""
        if self.store.exists(MARKER):
            return
        count = 0
        for key in record_keys():
            try:
                rec = self.store.get_json(key)
                self.add(rec["owner"], rec["run_id"], float(rec.get("created_at") or 0.0))
                if rec.get("state") in FINAL_STATES:
                    self.finish(rec["run_id"], rec["state"])
                count += 1
            except (StoreError, KeyError, TypeError, ValueError) as exc:
                log.warning("run index: cannot index %s: %s", key, exc)
        self.store.put_json(MARKER, {"version": 1, "indexed": count, "at": time.time()}, overwrite=True)
        if count:
            log.info("run index: indexed %d existing run record(s)", count)
