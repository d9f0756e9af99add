"""The optimizer's jobs, run in child processes: one sweep shard (store in, store out), the merge (local files)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Selected:
    """The bit-widths the merge selected, with their files and why."""

    optim_params: dict[str, int]
    accuracy: float
    hardware: dict[str, Any]  #: the generator knobs picked with them (events_per_cycle, neurons_per_cycle)
    reason: str
    optim_params_file: str
    selection_file: str


@dataclass(frozen=True)
class MergeOutput:
    """A merge job's result: the merged sweep's files and numbers, and the selection (None: none fit)."""

    sweep_json: str
    sweep_csv: str
    plot: str
    float_accuracy: float
    n_configs: int
    n_feasible: int
    selected: Selected | None
    selection_error: str


def merge_job(workdir: str, shards: list[str], ranges: dict[str, Any],
              max_accuracy_drop: float, policy: dict[str, Any] | None = None) -> MergeOutput:
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
    sweep_json, sweep_csv = str(result.to_json(out / "sweep.json")), str(result.to_csv(out / "sweep.csv"))
    params, selected, selection_error = None, None, ""
    try:
        params = result.select(max_accuracy_drop, **(policy or {}))
    except SpikerError as exc:
        selection_error = str(exc)
    else:
        (out / "optim_params.json").write_text(json.dumps(dict(params), indent=1, sort_keys=True) + "\n")
        (out / "selection.json").write_text(json.dumps(params.to_dict(), indent=1, sort_keys=True) + "\n")
        selected = Selected(optim_params=dict(params), accuracy=params.accuracy, hardware=params.hardware,
                            reason=params.reason, optim_params_file=str(out / "optim_params.json"),
                            selection_file=str(out / "selection.json"))
    plot = str(result.plot_pareto(out / "pareto.png", params))
    return MergeOutput(sweep_json=sweep_json, sweep_csv=sweep_csv, plot=plot, float_accuracy=result.float_accuracy,
                       n_configs=len(result.rows), n_feasible=len(result.feasible), selected=selected,
                       selection_error=selection_error)
