"""A net dict is parsed once per process it arrives in: the service guard's size check, the
dataset conversion and the job read what the servicer parsed (issue 21: one ``spiker run`` parsed
the user's net 9 times, 3 since: the CLI, the gateway and the trainer service).

A parse is counted where every one of them passes: ``spiker.net.spec._parse_layer`` on ``layer_0``
(a module global, so callers that imported ``parse_net_dict`` by name are counted too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from svc_support import Stack, dataset_spec, drain, tiny_net

import spiker.net.spec as net_spec
from spiker.flow.spec import parse_flow_spec
from spiker_api import convert
from spiker_api.limits import SizeLimits, check_request
from spiker_api.v1 import trainer_pb2
from spiker_services.trainer.job import train_job


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry per net dict parsed in this process from now on."""
    counted: list[int] = []
    real = net_spec._parse_layer

    def counting(index: int, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if index == 0:
            counted.append(index)
        return real(index, *args, **kwargs)

    monkeypatch.setattr(net_spec, "_parse_layer", counting)
    return counted


def _request(stack: Stack) -> trainer_pb2.TrainRequest:
    return trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=dataset_spec(stack.npz),
                                    config=trainer_pb2.TrainConfig(epochs=1, lr=0.01))


def test_counter_counts_a_parse(parses: list[int]) -> None:
    parse_flow_spec({"net": convert.net_dict_from_proto(tiny_net())})
    assert len(parses) == 1


def test_guard_and_dataset_conversion_parse_no_net(local_stack: Stack, parses: list[int]) -> None:
    request = _request(local_stack)
    check_request(request, SizeLimits())
    convert.dataset_from_proto(request.dataset)
    assert parses == []


def test_train_request_parses_its_net_once(local_stack: Stack, parses: list[int]) -> None:
    _, result = drain(local_stack.trainer.Train(_request(local_stack), timeout=120))
    assert result.model.key
    assert len(parses) == 1  # the servicer's; the guard read the sizes off the message


def test_train_job_trains_the_parsed_spec(tmp_path: Path, local_stack: Stack, parses: list[int]) -> None:
    request = _request(local_stack)
    dataset, npz = convert.dataset_from_proto(request.dataset)
    (tmp_path / convert.NPZ_NAME).write_bytes(local_stack.store.get_bytes(npz))
    spec = parse_flow_spec({"name": "train", "dataset": dataset,
                            "net": convert.net_dict_from_proto(request.net_dict), "train": {"epochs": 1}})
    out = train_job(str(tmp_path), spec)
    assert Path(out.model).is_file() and out.epochs == 1
    assert len(parses) == 1  # the parse above; the job and the library's train stage add none
