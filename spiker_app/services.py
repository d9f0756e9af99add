"""The four stage services a server can host, by CLI name; :func:`build_stage_server` starts them.

The list lives here, in the composition root, so that the services' common server code
(spiker_services/common/server.py) imports none of the servicers it serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spiker_services.common.runtime import Runtime
from spiker_services.common.server import ServiceEntry, StageServer, build_server

SERVICE_NAMES = ("trainer", "optimizer", "hdlgen", "simulator")


def registry() -> dict[str, ServiceEntry]:
    """The stage services by CLI name: trainer, optimizer, hdlgen, simulator."""
    from spiker_api.v1 import hdlgen_pb2_grpc, optimizer_pb2_grpc, simulator_pb2_grpc, trainer_pb2_grpc
    from spiker_services.hdlgen.servicer import SERVICE_NAME as HDLGEN
    from spiker_services.hdlgen.servicer import HdlgenServicer
    from spiker_services.optimizer.servicer import SERVICE_NAME as OPTIMIZER
    from spiker_services.optimizer.servicer import OptimizerServicer
    from spiker_services.simulator.servicer import SERVICE_NAME as SIMULATOR
    from spiker_services.simulator.servicer import SimulatorServicer
    from spiker_services.trainer.servicer import SERVICE_NAME as TRAINER
    from spiker_services.trainer.servicer import TrainerServicer

    return {
        "trainer": ServiceEntry("trainer", TRAINER, TrainerServicer,
                                trainer_pb2_grpc.add_TrainerServiceServicer_to_server),
        "optimizer": ServiceEntry("optimizer", OPTIMIZER, OptimizerServicer,
                                  optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server),
        "hdlgen": ServiceEntry("hdlgen", HDLGEN, HdlgenServicer,
                               hdlgen_pb2_grpc.add_HdlgenServiceServicer_to_server),
        "simulator": ServiceEntry("simulator", SIMULATOR, SimulatorServicer,
                                  simulator_pb2_grpc.add_SimulatorServiceServicer_to_server),
    }


def build_stage_server(names: Sequence[str], runtime: Runtime, **options: Any) -> StageServer:
    """Start a server hosting the services ``names`` (see ``build_server`` for ``options``)."""
    entries = registry()
    unknown = [n for n in names if n not in entries]
    if unknown or not names:
        raise ValueError(f"unknown service {unknown or list(names)}; choose from {', '.join(SERVICE_NAMES)}")
    return build_server([entries[n] for n in dict.fromkeys(names)], runtime, **options)
