"""The trainer's job, run in a child process on a local work folder (no store, no gRPC)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from spiker.flow import stages
from spiker.flow.spec import FlowSpec
from spiker.training import History
from spiker_api.convert import dataset_in_workdir
from spiker_services.common.child import report


def _epoch_reporter(total: int):
    """An ``on_epoch`` callback that sends each epoch's metrics as a progress event."""

    def on_epoch(h: History) -> None:
        metrics = {"train_loss": h.train_loss[-1], "train_accuracy": h.train_accuracy[-1],
                   "test_loss": h.test_loss[-1], "test_accuracy": h.test_accuracy[-1], "seconds": h.seconds[-1]}
        report("epoch", f"epoch {h.epoch[-1]}/{total}: train acc {h.train_accuracy[-1]:.4f}, test acc "
                        f"{h.test_accuracy[-1]:.4f} ({h.n_test} test samples)",
               h.epoch[-1], total, metrics)

    return on_epoch


@dataclass(frozen=True)
class TrainOutput:
    """A train job's result: its files (in the work folder) and the training's numbers."""

    model: str
    history: str
    plot: str
    test_accuracy: float
    epochs: int
    seconds: float


def train_job(workdir: str, spec: FlowSpec) -> TrainOutput:
    """Train ``spec`` (as the servicer parsed it) with the library's train stage in ``workdir/out``
    (an uploaded ``.npz`` read from ``workdir``); returns output paths and numbers."""
    folder = Path(workdir)
    dataset = replace(spec.dataset, name=dataset_in_workdir(asdict(spec.dataset), folder)["name"])
    spec = replace(spec, dataset=dataset)
    out = folder / "out"
    _, history = stages.train(spec, out, progress=False, on_epoch=_epoch_reporter(spec.train.epochs))
    return TrainOutput(model=str(out / "model.pt"), history=str(out / "history.json"),
                       plot=str(out / "training.png"), test_accuracy=history.final_test_accuracy,
                       epochs=len(history.epoch), seconds=history.wall_time)
