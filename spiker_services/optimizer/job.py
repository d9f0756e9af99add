"""The optimizer's jobs, run in child processes: one sweep shard (store in, store out), the merge (local files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spiker.errors import SpikerError
from spiker.optimize import SweepResult
from spiker.optimize.optimizer import parse_optim_config
from spiker_services.optimizer.worker import worker_sweep


def shard_job(workdir: str, store_env: dict[str, str], task: str, index: int, count: int) -> str:
    """``spiker worker sweep`` for one shard, in this job process; returns the shard result's key.

    ``store_env``: the ``SPIKER_S3_*``/``SPIKER_STORE_DIR`` settings that open the service's
    store. Its threads are the job's CPU budget (the runtime sets them: parallel shards share the
    cores; oversubscribed OpenMP threads spin against each other, up to 4x slower here).
    """
    os.environ.update(store_env)
    return worker_sweep(task, index, count)


def merge_job(workdir: str, shards: list[str], ranges: dict[str, Any],
              max_accuracy_drop: float, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge shard results (grid order), write json/csv/plot, select bit-widths and hardware knobs.

    ``policy``: the other keyword arguments of :meth:`SweepResult.select` (objective, budgets).
    """
    out = Path(workdir) / "out"
    out.mkdir(parents=True, exist_ok=True)
    parts = [SweepResult.from_dict(json.loads(Path(p).read_text())) for p in shards]
    order = [(c.weights_bw, c.neurons_bw, c.fp_dec) for c in parse_optim_config(ranges)]
    result = SweepResult.merge(parts, order=order)
    result.meta.pop("shard_index", None)
    result.meta["shard_count"] = len(parts)
    paths = {"json": str(result.to_json(out / "sweep.json")), "csv": str(result.to_csv(out / "sweep.csv"))}
    summary: dict[str, Any] = {"paths": paths, "float_accuracy": result.float_accuracy,
                               "n_configs": len(result.rows), "n_feasible": len(result.feasible),
                               "selected": None, "selection_error": ""}
    params = None
    try:
        params = result.select(max_accuracy_drop, **(policy or {}))
    except SpikerError as exc:
        summary["selection_error"] = str(exc)
    else:
        (out / "optim_params.json").write_text(json.dumps(dict(params), indent=1, sort_keys=True) + "\n")
        (out / "selection.json").write_text(json.dumps(params.to_dict(), indent=1, sort_keys=True) + "\n")
        paths["optim_params"] = str(out / "optim_params.json")
        paths["selection"] = str(out / "selection.json")
        summary["selected"] = dict(params)
        summary["selected_accuracy"] = params.accuracy
        summary["selected_hardware"] = params.hardware
        summary["selection_reason"] = params.reason
    paths["plot"] = str(result.plot_pareto(out / "pareto.png", params))
    return summary
