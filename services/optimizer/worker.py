"""The sweep worker: score one shard of a task and write its SweepResult to the store.

:func:`run_shard` is the unit a Kubernetes Indexed Job runs (``spiker worker sweep --task KEY
--count N``, index from ``JOB_COMPLETION_INDEX``); the optimizer service runs the same
:func:`score_shard` in its preloaded job processes. No gRPC here: only the store and the library.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from services.optimizer.task import TASK_KIND, shard_key
from spiker import data
from spiker.errors import SpecError
from spiker.net.model import SpikingNet
from spiker.optimize import Optimizer, SweepResult
from spiker.store import ArtifactRef, ArtifactStore

log = logging.getLogger(__name__)


def check_shard(index: int, count: int) -> None:
    """Reject a shard index outside ``0..count-1`` (or a count below 1)."""
    if not (isinstance(count, int) and count >= 1 and isinstance(index, int) and 0 <= index < count):
        raise SpecError("index", f"need 0 <= index < count, got index={index!r}, count={count!r}")


def score_shard(model: Path, dataset: dict[str, Any], net_dict: dict[str, Any] | None,
                ranges: dict[str, Any], loss: str, index: int, count: int) -> SweepResult:
    """Score shard ``index`` of ``count`` of a sweep on local files (the model, an optional .npz)."""
    check_shard(index, count)
    snn = SpikingNet.load(model)
    _, test_loader = data.load(n_cycles=snn.spec.n_cycles, **dataset)
    optimizer = Optimizer(snn, net_dict, ranges, loss=loss, progress=False)
    log.info("sweep worker: shard %d/%d (%d of %d configs)", index, count,
             len(optimizer.configs[index::count]), len(optimizer.configs))
    return optimizer.optimize(test_loader, shard_index=index, shard_count=count)


def run_shard(store: ArtifactStore, task: str, index: int, count: int) -> str:
    """Score shard ``index`` of ``count`` of the task document at key ``task``; returns the result key."""
    check_shard(index, count)
    doc = store.get_json(task)
    if not isinstance(doc, dict) or doc.get("kind") != TASK_KIND:
        raise SpecError("task", f"{task!r} is not a sweep task document ({TASK_KIND})")
    with tempfile.TemporaryDirectory(prefix="spiker-sweep-") as tmp:
        folder = Path(tmp)
        model = store.get_file(ArtifactRef.from_dict(doc["model"]), folder / "model.pt")
        dataset = dict(doc["dataset"])
        if doc.get("npz"):
            dataset["name"] = str(store.get_file(ArtifactRef.from_dict(doc["npz"]), folder / "dataset.npz"))
        log.info("sweep worker: task %s", task)
        result = score_shard(model, dataset, doc.get("net_dict"), doc["ranges"], doc["loss"], index, count)
    key = shard_key(task, index, count)
    store.put_json(key, result.to_dict(), overwrite=True)
    log.info("sweep worker: wrote %s", key)
    return key
