"""The sweep worker: score one shard of a task and write its SweepResult to the store.

This is the unit a Kubernetes Indexed Job runs (``spiker worker sweep --task KEY --count N``,
index from ``JOB_COMPLETION_INDEX``); the optimizer service runs the same entry point in its
preloaded job processes. No gRPC here: only the store and the library.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from spiker import data
from spiker.errors import SpecError
from spiker.net.model import SpikingNet
from spiker.optimize import Optimizer
from spiker.store import ArtifactRef, ArtifactStore, open_store
from spiker_services.optimizer.task import TASK_KIND, shard_key

log = logging.getLogger(__name__)


def run_shard(store: ArtifactStore, task: str, index: int, count: int) -> str:
    """Score shard ``index`` of ``count`` of the task document at key ``task``; returns the result key."""
    if not (isinstance(count, int) and count >= 1 and isinstance(index, int) and 0 <= index < count):
        raise SpecError("index", f"need 0 <= index < count, got index={index!r}, count={count!r}")
    doc = store.get_json(task)
    if not isinstance(doc, dict) or doc.get("kind") != TASK_KIND:
        raise SpecError("task", f"{task!r} is not a sweep task document ({TASK_KIND})")
    with tempfile.TemporaryDirectory(prefix="spiker-sweep-") as tmp:
        folder = Path(tmp)
        model = store.get_file(ArtifactRef.from_dict(doc["model"]), folder / "model.pt")
        dataset = dict(doc["dataset"])
        if doc.get("npz"):
            dataset["name"] = str(store.get_file(ArtifactRef.from_dict(doc["npz"]), folder / "dataset.npz"))
        snn = SpikingNet.load(model)
        _, test_loader = data.load(n_cycles=snn.spec.n_cycles, **dataset)
        optimizer = Optimizer(snn, doc.get("net_dict"), doc["ranges"], loss=doc["loss"], progress=False,
                              hardware=doc.get("hardware"))
        log.info("sweep worker: shard %d/%d of %s (%d of %d configs)", index, count, task,
                 len(optimizer.configs[index::count]), len(optimizer.configs))
        result = optimizer.optimize(test_loader, shard_index=index, shard_count=count)
    key = shard_key(task, index, count)
    store.put_json(key, result.to_dict(), overwrite=True)
    log.info("sweep worker: wrote %s", key)
    return key


def worker_sweep(task_key: str, index: int | None, count: int) -> str:
    """``spiker worker sweep``: shard ``index`` of ``count`` of the task at ``task_key``, on the
    environment's store (``SPIKER_S3_*`` / ``SPIKER_STORE_DIR``).

    ``index`` None: taken from ``JOB_COMPLETION_INDEX`` (a Kubernetes Indexed Job). Returns the
    key of the shard result.
    """
    if index is None:
        raw = os.environ.get("JOB_COMPLETION_INDEX", "")
        if not raw.strip().isdigit():
            raise SpecError("index", "give --index or set JOB_COMPLETION_INDEX (Kubernetes Indexed Job)")
        index = int(raw)
    return run_shard(open_store(), task_key, index, count)
