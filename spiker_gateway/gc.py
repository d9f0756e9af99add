"""Retention: ``spiker gc`` removes finished runs, uploads and cache entries older than a TTL, and the
artifacts nothing kept refers to. It never deletes what a kept run references.

Kept: every unfinished run, every run finished less than ``ttl`` ago, every run whose record says
``"keep": true``, uploads and cache entries younger than ``ttl``, and every artifact any of them
references (found by walking their JSON for ``artifacts/sha256/...`` keys). An unreferenced
artifact is removed only once it is older than ``ttl`` too, and only while no run is unfinished:
a stage that stores content the store already holds (``put_bytes`` of an existing sha256) leaves
the artifact's old modification time, and its run's record names the output only once the stage
ends, so while any run is active no unreferenced artifact is collected (runs, uploads and cache
entries still are; ``GcReport.active_runs`` says so). An unfinished run whose gateway died is
resumed by the next gateway, so this waits for it to end, never forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from spiker.store import ARTIFACT_PREFIX, ArtifactNotFound, ArtifactStore, StoreError
from spiker_gateway.index import BY_OWNER, FINAL_STATES, RunIndex, final_key
from spiker_gateway.report import run_prefix

log = logging.getLogger(__name__)

FINAL = FINAL_STATES


@dataclass
class GcReport:
    """What a collection removed (or, with ``dry_run``, would remove)."""

    runs: list[str] = field(default_factory=list)
    uploads: int = 0
    cache_entries: int = 0
    artifacts: int = 0
    bytes_freed: int = 0
    kept_artifacts: int = 0
    #: unfinished runs seen: while there are any, unreferenced artifacts are not collected
    active_runs: int = 0


def artifact_keys(doc: Any) -> Iterator[str]:
    """Every ``artifacts/sha256/...`` key a JSON document mentions."""
    if isinstance(doc, str):
        if doc.startswith(ARTIFACT_PREFIX):
            yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from artifact_keys(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from artifact_keys(value)


def collect(store: ArtifactStore, ttl_s: float, now: float | None = None, dry_run: bool = False) -> GcReport:
    """Remove what is older than ``ttl_s`` seconds and not referenced by anything kept."""
    now = time.time() if now is None else now
    cutoff = now - ttl_s
    report = GcReport()
    keep: set[str] = set()
    index = RunIndex(store)
    index.ensure(lambda: [k for k in store.list("runs/") if k.endswith("/record.json")])
    owners, _finals = index.scan()
    old_runs: list[tuple[str, str]] = []
    for run_id, owner in sorted(owners.items()):
        try:
            rec = store.get_json(f"{run_prefix(run_id)}/record.json")
        except ArtifactNotFound:
            continue
        finished = rec.get("finished_at") or rec.get("created_at") or now
        if rec.get("state") in FINAL and finished < cutoff and not rec.get("keep"):
            old_runs.append((run_id, owner))
        else:
            keep.update(artifact_keys(rec))
        if rec.get("state") not in FINAL:
            report.active_runs += 1
    removable: list[str] = []
    for key in store.list("uploads/"):
        try:
            doc = store.get_json(key)
        except (StoreError, ValueError):
            continue
        if float(doc.get("uploaded_at") or now) < cutoff:
            removable.append(key)
            report.uploads += 1
        else:
            keep.add(f"{ARTIFACT_PREFIX}{doc['sha256'][:2]}/{doc['sha256']}")
    for key in store.list("cache/"):
        try:
            entry = store.get_json(key)
        except (StoreError, ValueError):
            continue
        if float(entry.get("created_at") or now) < cutoff:
            removable.append(key)
            report.cache_entries += 1
        else:
            keep.update(artifact_keys(entry))
    for run_id, owner in old_runs:
        removable.extend(store.list(f"{run_prefix(run_id)}/"))
        removable.extend(f"{BY_OWNER}{owner}/{e.name}.json" for e in index.entries(owner) if e.run_id == run_id)
        removable.append(final_key(run_id))
        report.runs.append(run_id)
    if report.active_runs:
        log.info("gc: %d run(s) unfinished: unreferenced artifacts are kept until they end (a stage may be "
                 "writing content already stored, which keeps its old modification time)", report.active_runs)
    for key in store.list(ARTIFACT_PREFIX) if not report.active_runs else []:
        if key in keep:
            report.kept_artifacts += 1
            continue
        written = store.modified(key)
        if written is not None and written < cutoff:
            info = store.ref_for(key)
            removable.append(key)
            report.artifacts += 1
            report.bytes_freed += info.size
    if not dry_run:
        for key in removable:
            store.delete(key)
    log.info("gc: %s %d run(s), %d upload(s), %d cache entr(ies), %d artifact(s) (%d bytes); %d artifact(s) "
             "kept", "would remove" if dry_run else "removed", len(report.runs), report.uploads,
             report.cache_entries, report.artifacts, report.bytes_freed, report.kept_artifacts)
    return report
