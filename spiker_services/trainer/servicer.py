"""``spiker.v1.TrainerService``: train a net dict on a dataset, upload model, history and plot."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from spiker.errors import SpecError
from spiker.flow.spec import parse_flow_spec
from spiker_api import convert
from spiker_api.errors import FieldError, remap_field
from spiker_api.v1 import trainer_pb2, trainer_pb2_grpc
from spiker_services.common.runtime import Call, Runtime, streaming
from spiker_services.trainer.job import train_job

log = logging.getLogger(__name__)

#: library keys -> request fields (errors name the request field)
FIELD_MAP = convert.field_map(trainer_pb2.TrainRequest)
SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name


def train_section(msg: trainer_pb2.TrainConfig) -> dict[str, Any]:
    """The flow spec's ``train`` section from the set fields of ``TrainConfig``."""
    keys = ("epochs", "lr", "loss", "optimizer", "seed")
    return {key: getattr(msg, key) for key in keys if msg.HasField(key)}


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    """Train: validate, wait for a slot, fetch the dataset, train in a child process, upload."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @streaming("train", trainer_pb2.TrainResponse, FIELD_MAP)
    def Train(self, request: trainer_pb2.TrainRequest, call: Call) -> Iterator[Any]:  # noqa: N802
        if not request.HasField("net_dict"):
            raise FieldError("net_dict", "is required")
        if not request.HasField("dataset"):
            raise FieldError("dataset", "is required")
        net = convert.net_dict_from_proto(request.net_dict)
        dataset, npz = convert.dataset_from_proto(request.dataset)
        train = train_section(request.config)
        try:  # all content checks are the library's; errors come back with the request's field names
            spec = parse_flow_spec({"name": "train", "dataset": dataset, "net": net, "train": train})
        except SpecError as exc:
            raise FieldError(remap_field(exc.key, FIELD_MAP), exc.message, "SPEC_ERROR") from None
        if npz is not None:
            call.require(npz, "dataset.npz")
        yield from call.wait_turn()
        yield call.progress("loading", "fetching inputs")
        if npz is not None:
            call.fetch(npz, convert.NPZ_NAME, "dataset.npz")
        out = yield from call.run_job(train_job, spec=spec)  # parsed once, here
        yield call.progress("uploading", "storing model, history and plot")
        result = trainer_pb2.TrainResult(
            model=call.put(out.model, "model"), history=call.put(out.history, "history", "application/json"),
            training_plot=call.put(out.plot, "plot", "image/png"),
            test_accuracy=out.test_accuracy, epochs=out.epochs, seconds=out.seconds)
        log.info("train: test accuracy %.4f, model %s", result.test_accuracy, result.model.key)
        yield result
