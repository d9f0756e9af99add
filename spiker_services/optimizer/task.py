"""Sweep task documents and shard result keys in the store (docs/services.md, "Sharded sweeps").

Layout::

    tasks/sweep/<task-id>/task.json                          the task (immutable)
    tasks/sweep/<task-id>/shards/of-<count>/<index>.json     SweepResult.to_dict() of one shard

``<task-id>`` is the first 32 hex digits of the sha256 of the task document, so the same sweep
always gets the same key and its shard results are reusable.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from spiker.store import ArtifactRef, ArtifactStore

TASK_KIND = "spiker.sweep-task/v1"
TASK_PREFIX = "tasks/sweep/"


def make_task(model: ArtifactRef, net_dict: dict[str, Any] | None, ranges: dict[str, Any],
              dataset: dict[str, Any], npz: ArtifactRef | None, loss: str,
              hardware: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task document: everything a worker needs to score any shard of the sweep.

    ``hardware``: the Optimizer's hardware knobs (``events_per_cycle``/``neurons_per_cycle`` lists).
    """
    task = {"kind": TASK_KIND, "model": model.to_dict(), "net_dict": net_dict, "ranges": ranges,
            "dataset": dataset, "npz": None if npz is None else npz.to_dict(), "loss": loss}
    if hardware:
        task["hardware"] = hardware
    return task


def task_key(task: dict[str, Any]) -> str:
    """The content-derived key of a task document."""
    digest = hashlib.sha256(json.dumps(task, sort_keys=True).encode()).hexdigest()[:32]
    return f"{TASK_PREFIX}{digest}/task.json"


def put_task(store: ArtifactStore, task: dict[str, Any]) -> str:
    """Store the task document (a no-op if already there); returns its key."""
    key = task_key(task)
    store.put_json(key, task)
    return key


def shard_key(key: str, index: int, count: int) -> str:
    """Where shard ``index`` of ``count`` of the task at ``key`` writes its result."""
    return f"{posixpath.dirname(key)}/shards/of-{count}/{index}.json"
