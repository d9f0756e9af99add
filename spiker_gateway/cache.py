"""Stage cache: a stage whose inputs, config and code version hash to a known key reuses its outputs.

Key: sha256 of the canonical JSON of ``{stage, inputs (name -> sha256), config, code}``, where
``code`` is ``spiker.__version__`` plus a hash of the sources that stage depends on
(:data:`STAGE_CODE`: e.g. an RTL change invalidates hdlgen and simulate, not training) and of
the versions of torch, snntorch, numpy ... (:data:`STAGE_PACKAGES`). Float training and
evaluation run at a fixed thread count (``spiker.threads.TRAIN_THREADS``, hashed with
spiker/threads.py), so the host's core count is no part of a result.
Entries live at ``cache/<stage>/<key>.json`` in the store and hold the stage's result message
(as JSON), its outputs and metrics; an entry whose outputs are no longer in the store is a miss.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from spiker.store import ArtifactNotFound, ArtifactStore, IntegrityError

log = logging.getLogger(__name__)

CACHE_PREFIX = "cache"
_ROOT = Path(__file__).resolve().parents[1]
#: code every stage depends on (the CLI and entry points are left out on purpose)
_COMMON = ("spiker/__init__.py", "spiker/errors.py", "spiker/readout.py", "spiker/net/*.py", "spiker/data/*.py",
           "spiker/flow/spec.py", "spiker_api/*.py", "spiker_services/common/*.py", "proto/spiker/v1/*.proto")
#: the code a stage's result depends on, beyond the common part
STAGE_CODE = {
    # spiker/threads.py: the fixed thread count of float training and evaluation
    "train": ("spiker/training/*.py", "spiker/flow/stages.py", "spiker/threads.py", "spiker_services/trainer/*.py"),
    # the sweep scores with the trainer's loss and runs through the worker (spiker_services/optimizer/worker.py)
    # cycles from spiker/hdl/sim.py (the RTL's cycle model), register widths from the generator, the cost
    # model's coefficients (*.json, fitted on the RTL)
    "optimize": ("spiker/golden/*.py", "spiker/optimize/*.py", "spiker/optimize/*.json", "spiker/hdl/*.py",
                 "spiker/hdl/rtl/*.vhd", "spiker/hdl/templates/*", "spiker/training/*.py", "spiker/threads.py",
                 "spiker_services/optimizer/*.py"),
    # hdl.resources: fast is the cost model's estimate (spiker/optimize); yosys' thread count (spiker/threads.py)
    "hdlgen": ("spiker/golden/*.py", "spiker/hdl/*.py", "spiker/hdl/rtl/*.vhd", "spiker/hdl/templates/*",
               "spiker/optimize/*.py", "spiker/optimize/*.json", "spiker/threads.py", "spiker_services/hdlgen/*.py"),
    "synth": ("spiker/golden/*.py", "spiker/hdl/*.py", "spiker/hdl/rtl/*.vhd", "spiker/hdl/templates/*",
              "spiker/optimize/*.py", "spiker/optimize/*.json", "spiker/threads.py", "spiker_services/hdlgen/*.py"),
    "simulate": ("spiker/golden/*.py", "spiker/hdl/*.py", "spiker/hdl/rtl/*.vhd", "spiker/hdl/templates/*",
                 "spiker/threads.py", "spiker_services/simulator/*.py"),
}


#: installed packages whose version can change a stage's numbers (float kernels, data generators)
_DATA_PACKAGES = ("numpy", "scikit-learn", "mnist1d")
STAGE_PACKAGES = {"train": ("torch", "snntorch", *_DATA_PACKAGES), "optimize": ("torch", "snntorch", *_DATA_PACKAGES),
                  "simulate": _DATA_PACKAGES}


def package_versions(stage: str | None = None) -> str:
    """``name==version`` of the packages in :data:`STAGE_PACKAGES` for ``stage`` (all without one)."""
    from importlib import metadata

    names = STAGE_PACKAGES.get(stage, ()) if stage else sorted({p for v in STAGE_PACKAGES.values() for p in v})
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}==none")
    return ",".join(out)


@functools.lru_cache(maxsize=8)
def code_version(stage: str | None = None) -> str:
    """``spiker.__version__`` plus a short hash of the sources ``stage``'s result depends on and of
    the versions of the packages that can change its numbers (:data:`STAGE_PACKAGES`: torch, ...).

    Without a stage: every library, service and proto source. Computed once per process.
    """
    import spiker

    patterns = (*_COMMON, *STAGE_CODE[stage]) if stage else ("spiker/**/*.py", "spiker/hdl/rtl/*.vhd",
                                                             "spiker/hdl/templates/*", "spiker_api/*.py",
                                                             "spiker_services/**/*.py", "proto/spiker/v1/*.proto")
    h = hashlib.sha256(package_versions(stage).encode())
    for path in sorted({p for pattern in patterns for p in _ROOT.glob(pattern)}):
        h.update(str(path.relative_to(_ROOT)).encode())
        h.update(path.read_bytes())
    return f"{spiker.__version__}+{h.hexdigest()[:16]}"


def cache_key(stage: str, inputs: dict[str, dict[str, Any]], config: dict[str, Any],
              code: str | None = None) -> str:
    """The cache key of a stage call: inputs are ArtifactRef dicts (only their sha256 counts)."""
    doc = {"stage": stage, "inputs": {name: ref["sha256"] for name, ref in sorted(inputs.items())},
           "config": config, "code": code or code_version(stage)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class StageCache:
    """Cache entries in the store, keyed by :func:`cache_key`."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @staticmethod
    def key_of(stage: str, key: str) -> str:
        return f"{CACHE_PREFIX}/{stage}/{key}.json"

    def get(self, stage: str, key: str) -> dict[str, Any] | None:
        """The entry of ``key`` if it exists and all its outputs are still stored."""
        try:
            entry = self.store.get_json(self.key_of(stage, key))
        except (ArtifactNotFound, IntegrityError):
            return None
        for name, ref in entry.get("outputs", {}).items():
            if not self.store.exists(ref["key"]):
                log.warning("cache %s/%s: output %s is gone; recomputing", stage, key[:12], name)
                return None
        return entry

    def put(self, stage: str, key: str, result: dict[str, Any], outputs: dict[str, Any],
            metrics: dict[str, float], seconds: float, run_id: str) -> None:
        """Record a computed stage (the newest computation wins)."""
        self.store.put_json(self.key_of(stage, key), {
            "stage": stage, "key": key, "result": result, "outputs": outputs, "metrics": metrics,
            "compute_seconds": seconds, "run_id": run_id, "created_at": time.time()}, overwrite=True)
