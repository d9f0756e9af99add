"""The Indexed-Job worker, run as N local processes with JOB_COMPLETION_INDEX=0..N-1 against a
real S3 server (SeaweedFS on loopback), gives the same sweep table as the in-process sweep."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from deploy_helpers import REPO

from spiker import NetBuilder, Optimizer, SweepResult, data
from spiker.optimize.optimizer import parse_optim_config
from spiker.store import open_store
from spiker_services.optimizer.kubernetes_job import build_sweep_job
from spiker_services.optimizer.task import make_task, put_task, shard_key

N_INPUTS, N_CYCLES, SHARDS = 8, 6, 3
NET = {"n_cycles": N_CYCLES, "n_inputs": N_INPUTS,
       "layer_0": {"neuron_model": "lif", "n_neurons": 10, "beta": 0.75, "threshold": 0.75,
                   "reset_mechanism": "subtract"},
       "layer_1": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75, "threshold": 0.75,
                   "reset_mechanism": "subtract"}}
RANGES = {"weights_bw": {"min": 4, "max": 5}, "neurons_bw": {"min": 6, "max": 7}, "fp_dec": {"min": 2, "max": 3}}
DATASET = {"batch_size": 16, "seed": 0, "test_fraction": 0.4}


def _npz() -> bytes:
    """60 samples of 8 features in [0, 1], 3 classes."""
    rng = np.random.default_rng(1)
    y = np.arange(60) % 3
    x = rng.uniform(0.0, 0.3, size=(60, N_INPUTS))
    for c in range(3):
        x[y == c, c * 2:c * 2 + 3] += 0.7
    buf = io.BytesIO()
    np.savez(buf, x=np.clip(x, 0, 1).astype(np.float32), y=y.astype(np.int64))
    return buf.getvalue()


def _rows(result: SweepResult) -> list[dict[str, Any]]:
    """Every field of every row except the wall time."""
    return [{k: v for k, v in sorted(vars(row).items()) if k != "seconds"} for row in result.rows]


@pytest.mark.slow
def test_indexed_workers_equal_in_process_sweep(s3_env: Any, tmp_path: Path) -> None:
    """N `spiker worker sweep` processes (index from JOB_COMPLETION_INDEX, store on S3) == Optimizer.optimize."""
    store = open_store()
    assert type(store).__name__ == "S3Store"
    snn = NetBuilder(NET).build(seed=0)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(2.0)
    model_path = snn.save(tmp_path / "model.pt")
    model_ref = store.put_file(model_path, kind="checkpoint")
    npz_ref = store.put_bytes(_npz(), kind="dataset")
    task = make_task(model_ref, NET, RANGES, dict(DATASET), npz_ref, "ce_rate")
    key = put_task(store, task)

    # the pod command line of the Job, with $(TASK_KEY) expanded as Kubernetes does
    job = build_sweep_job(key, SHARDS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env_task = {e["name"]: e.get("value") for e in container["env"]}["TASK_KEY"]
    args = [a.replace("$(TASK_KEY)", env_task) for a in container["args"]]
    assert args == ["worker", "sweep", "--task", key, "--count", str(SHARDS)]
    cmd = [sys.executable, "-m", "spiker_app.serve", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env={**env, "JOB_COMPLETION_INDEX": str(i)}, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(SHARDS)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * SHARDS, [err[-2000:] for _, err in outs]
    assert [out.strip().splitlines()[-1] for out, _ in outs] == [shard_key(key, i, SHARDS) for i in range(SHARDS)]

    order = [(c.weights_bw, c.neurons_bw, c.fp_dec) for c in parse_optim_config(RANGES)]
    parts = [SweepResult.from_dict(store.get_json(shard_key(key, i, SHARDS))) for i in range(SHARDS)]
    merged = SweepResult.merge(parts, order=order)

    npz_path = tmp_path / "dataset.npz"
    npz_path.write_bytes(_npz())
    _, test_loader = data.load(str(npz_path), n_cycles=N_CYCLES, **DATASET)
    reference = Optimizer(snn, NET, RANGES, loss="ce_rate", progress=False).optimize(test_loader)

    assert len(merged.rows) == len(reference.rows) == len(order)
    assert _rows(merged) == _rows(reference)
    assert merged.float_accuracy == reference.float_accuracy and merged.n_samples == reference.n_samples
    assert len({(r.accuracy, r.float_agreement, r.feasible) for r in merged.rows}) > 1, "a degenerate table"
