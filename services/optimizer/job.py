"""The optimizer's jobs (score one shard, merge), run in child processes on local files (no store, no gRPC)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from services.optimizer.worker import score_shard
from spiker.errors import SpikerError
from spiker.optimize import SweepResult
from spiker.optimize.optimizer import parse_optim_config


def shard_job(workdir: str, model: str, dataset: dict[str, Any], net_dict: dict[str, Any] | None,
              ranges: dict[str, Any], loss: str, index: int, count: int, threads: int) -> dict[str, Any]:
    """Score shard ``index`` of ``count`` with ``threads`` torch threads; the SweepResult as a dict.

    Parallel shards on one machine must share its cores: oversubscribed torch (OpenMP) threads
    spin against each other and made a shard up to 4x slower here.
    """
    torch.set_num_threads(threads)
    return score_shard(Path(model), dataset, net_dict, ranges, loss, index, count).to_dict()


def merge_job(workdir: str, shards: list[str], ranges: dict[str, Any],
              max_accuracy_drop: float) -> dict[str, Any]:
    """Merge shard results (grid order), write json/csv/plot, select bit-widths."""
    out = Path(workdir) / "out"
    out.mkdir(parents=True, exist_ok=True)
    parts = [SweepResult.from_dict(json.loads(Path(p).read_text())) for p in shards]
    order = [(c.weights_bw, c.neurons_bw, c.fp_dec) for c in parse_optim_config(ranges)]
    result = SweepResult.merge(parts, order=order)
    result.meta.pop("shard_index", None)
    result.meta["shard_count"] = len(parts)
    paths = {"json": str(result.to_json(out / "sweep.json")), "csv": str(result.to_csv(out / "sweep.csv")),
             "plot": str(result.plot_pareto(out / "pareto.png"))}
    summary: dict[str, Any] = {"paths": paths, "float_accuracy": result.float_accuracy,
                               "n_configs": len(result.rows), "n_feasible": len(result.feasible),
                               "selected": None, "selection_error": ""}
    try:
        params = result.select(max_accuracy_drop)
    except SpikerError as exc:
        summary["selection_error"] = str(exc)
    else:
        (out / "optim_params.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
        paths["optim_params"] = str(out / "optim_params.json")
        summary["selected"] = params
        summary["selected_accuracy"] = result.row(**params).accuracy
    return summary
