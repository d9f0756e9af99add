"""Issue 16, item 4 (retention): ``spiker gc`` removes what is older than the TTL and nothing a kept run needs."""

from __future__ import annotations

import os
import time

from spiker.store import LocalStore
from spiker_gateway.gc import collect
from spiker_gateway.index import RunIndex

DAY = 86400.0


def _age(store: LocalStore, key: str, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(store.root / key, (t, t))


def _run(store: LocalStore, run_id: str, owner: str, finished_days_ago: float | None, refs: list) -> None:
    now = time.time()
    created = now - (finished_days_ago or 0) * DAY - 60
    rec = {"run_id": run_id, "owner": owner, "created_at": created, "seq": 1,
           "state": "running" if finished_days_ago is None else "succeeded",
           "finished_at": None if finished_days_ago is None else now - finished_days_ago * DAY,
           "stages": [{"name": "train", "state": "succeeded", "outputs": {f"o{i}": r.to_dict()
                                                                           for i, r in enumerate(refs)}}]}
    store.put_json(f"runs/{run_id}/record.json", rec, overwrite=True)
    store.put_json(f"runs/{run_id}/report.json", {"run": run_id}, overwrite=True)
    RunIndex(store).add(owner, run_id, created)
    if finished_days_ago is not None:
        RunIndex(store).finish(run_id, "succeeded")


def test_gc_keeps_what_kept_runs_reference_and_removes_the_rest(tmp_path) -> None:
    store = LocalStore(tmp_path / "store")
    shared, old_only, orphan, fresh, running_out = (store.put_bytes(f"blob-{n}".encode()) for n in range(5))
    for ref in (shared, old_only, orphan, running_out):
        _age(store, ref.key, 60)
    old_run, kept_run, live_run = "r-20260101-000000-0000000a", "r-20260301-000000-0000000b", \
        "r-20260301-000000-0000000c"
    _run(store, old_run, "alice", 45, [shared, old_only])
    _run(store, kept_run, "alice", 2, [shared])
    _run(store, live_run, "bob", None, [running_out])  # unfinished: kept whatever its age
    store.put_json("cache/train/old.json", {"created_at": time.time() - 40 * DAY, "outputs": {}}, overwrite=True)

    dry = collect(store, 30 * DAY, dry_run=True)
    assert dry.runs == [old_run] and store.exists(old_only.key)  # a dry run removes nothing

    report = collect(store, 30 * DAY)
    assert report.runs == [old_run] and report.cache_entries == 1
    assert not store.exists(f"runs/{old_run}/record.json") and not store.exists(f"runs/{old_run}/report.json")
    # bob's run is unfinished: a stage of it may be storing old content right now (old mtime, not in its
    # record yet), so no unreferenced artifact goes while it runs
    assert report.active_runs == 1 and report.artifacts == 0
    assert store.exists(old_only.key) and store.exists(orphan.key)
    _run(store, live_run, "bob", 0, [running_out])  # it ends: now the unreferenced old artifacts go
    report = collect(store, 30 * DAY)
    assert report.active_runs == 0 and report.artifacts == 2
    assert not store.exists(old_only.key) and not store.exists(orphan.key)
    for ref in (shared, running_out, fresh):  # referenced by a kept run, or younger than the TTL
        assert store.exists(ref.key), ref.key
    assert store.exists(f"runs/{kept_run}/record.json") and store.exists(f"runs/{live_run}/record.json")
    owners, finals = RunIndex(store).scan()
    assert old_run not in owners and old_run not in finals and kept_run in owners
    store.verify(shared)
