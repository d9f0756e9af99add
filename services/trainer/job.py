"""The trainer's job, run in a child process on a local work folder (no store, no gRPC)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from services.common.child import add_log_translator
from spiker.flow import stages
from spiker.flow.spec import parse_flow_spec

#: the fields of the Trainer's per-epoch log record (spiker.training.trainer: "epoch %d: ...")
_EPOCH_FIELDS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds")


def _epoch_event(total: int):
    def translate(record: logging.LogRecord) -> dict[str, Any] | None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.name == "spiker.training.trainer" and str(record.msg).startswith("epoch %d") \
                and len(args) == 1 + len(_EPOCH_FIELDS):
            return {"phase": "epoch", "message": record.getMessage(), "current": int(args[0]), "total": total,
                    "metrics": dict(zip(_EPOCH_FIELDS, map(float, args[1:])))}
        return None

    return translate


def train_job(workdir: str, net: dict[str, Any], dataset: dict[str, Any], train: dict[str, Any],
              ) -> dict[str, Any]:
    """Train with the library's train stage in ``workdir/out``; returns output paths and numbers."""
    folder = Path(workdir)
    if dataset["name"].endswith(".npz"):
        dataset = {**dataset, "name": str(folder / dataset["name"])}
    spec = parse_flow_spec({"name": "train", "dataset": dataset, "net": net, "train": train})
    add_log_translator(_epoch_event(spec.train.epochs))
    out = folder / "out"
    _, history = stages.train(spec, out, progress=False)
    return {"model": str(out / "model.pt"), "history": str(out / "history.json"),
            "plot": str(out / "training.png"), "test_accuracy": history.final_test_accuracy,
            "epochs": len(history.epoch), "seconds": history.wall_time}
