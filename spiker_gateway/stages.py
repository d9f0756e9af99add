"""The stages of a flow as calls to the stage services: the stage graph, requests, retries, outputs.

Each stage turns the flow spec and the results of the stages it needs into one service request,
names its inputs (ArtifactRefs) and config (the spec sections it depends on) for the cache
key, and reads its outputs and metrics from the service's result message. Nothing here
computes: numbers come from the services' results. :func:`run_graph` runs a run's stages in
the order of :data:`NEEDS`, each as soon as the stages it needs are done, so the synthesis
(``synth``: resource estimate) runs beside the simulation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from spiker.flow.spec import FlowSpec
from spiker_api import convert
from spiker_api.errors import error_detail
from spiker_api.limits import SERVICE_MAX_MESSAGE_BYTES
from spiker_api.service_token import authorized_channel, load_service_token
from spiker_api.v1 import (
    common_pb2,
    hdlgen_pb2,
    hdlgen_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
    simulator_pb2,
    simulator_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

log = logging.getLogger(__name__)

STAGES = ("train", "optimize", "hdlgen", "synth", "simulate")
#: the stage graph: the stages each stage needs (done = succeeded or skipped) before it starts
NEEDS: dict[str, tuple[str, ...]] = {"train": (), "optimize": ("train",), "hdlgen": ("train", "optimize"),
                                     "synth": ("train", "optimize"), "simulate": ("hdlgen",)}
#: the service each stage calls (synth: the hdlgen service's Generate with the resource estimate)
SERVICE_OF = {"train": "trainer", "optimize": "optimizer", "hdlgen": "hdlgen", "synth": "hdlgen",
              "simulate": "simulator"}
RESULT_TYPES: dict[str, type[Message]] = {
    "train": trainer_pb2.TrainResult, "optimize": optimizer_pb2.OptimizeResult,
    "hdlgen": hdlgen_pb2.GenerateResult, "synth": hdlgen_pb2.GenerateResult,
    "simulate": simulator_pb2.SimulateResult}
#: channel options: reconnect quickly after a service restarts; take replies well above a service's default cap
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000),
                   ("grpc.max_receive_message_length", 4 * SERVICE_MAX_MESSAGE_BYTES)]


class StageFailed(Exception):
    """A stage ended with an error status (after retries); carries the status and ErrorDetail."""

    def __init__(self, code: grpc.StatusCode, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.reason = reason
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.name, "field": self.field, "reason": self.reason, "message": self.message}


class StageCancelled(Exception):
    """The run was cancelled (or the gateway is stopping) while the stage ran."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential back-off for ``UNAVAILABLE``: delays initial, 2x, 4x ... up to max_delay.

    Retries stop after ``max_attempts`` or once ``budget_s`` seconds have passed since the first
    failure, whichever comes first: a service or store outage shorter than the budget costs a run
    nothing.
    """

    max_attempts: int = 1000
    initial_delay: float = 0.5
    max_delay: float = 8.0
    #: how long an outage may last before a stage (or record write) gives up
    budget_s: float = 300.0
    #: deadline of one stage call (seconds)
    call_timeout: float = 6 * 3600.0

    def delay(self, attempt: int) -> float:
        """Back-off before attempt ``attempt + 1`` (attempt counts from 1)."""
        return min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))


class StageClients:
    """gRPC stubs of the four services; ``targets`` maps service name -> ``host:port``."""

    def __init__(self, targets: dict[str, str], credentials: grpc.ChannelCredentials | None = None,
                 service_token: str | None = None) -> None:
        """``service_token``: the stage services' shared secret (default: $SPIKER_SERVICE_TOKEN[_FILE])."""
        token = service_token if service_token is not None else load_service_token()
        missing = [s for s in SERVICE_OF.values() if s not in targets]
        if missing:
            raise ValueError(f"no address for service(s) {', '.join(missing)}")
        self.targets = dict(targets)
        self._channels: dict[str, grpc.Channel] = {}
        for target in set(targets.values()):
            self._channels[target] = (grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
                                      if credentials else grpc.insecure_channel(target, options=CHANNEL_OPTIONS))
        ch = {name: authorized_channel(self._channels[t], token) for name, t in targets.items()}
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(ch["trainer"])
        self.optimizer = optimizer_pb2_grpc.OptimizerServiceStub(ch["optimizer"])
        self.hdlgen = hdlgen_pb2_grpc.HdlgenServiceStub(ch["hdlgen"])
        self.simulator = simulator_pb2_grpc.SimulatorServiceStub(ch["simulator"])

    def method(self, stage: str) -> Callable[..., Any]:
        return {"train": self.trainer.Train, "optimize": self.optimizer.Optimize,
                "hdlgen": self.hdlgen.Generate, "synth": self.hdlgen.Generate,
                "simulate": self.simulator.Simulate}[stage]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


@dataclass
class StagePlan:
    """One stage's service request, its inputs and config (the cache key's parts)."""

    stage: str
    request: Message | None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: why the stage is skipped (request is None)
    skip_reason: str = ""


def ref_dict(msg: common_pb2.ArtifactRef) -> dict[str, Any]:
    return convert.ref_from_proto(msg, "ref").to_dict()


def ref_msg(data: dict[str, Any]) -> common_pb2.ArtifactRef:
    return common_pb2.ArtifactRef(bucket=data["bucket"], key=data["key"], sha256=data["sha256"],
                                  size=int(data["size"]))


def result_to_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def result_from_dict(stage: str, data: dict[str, Any]) -> Any:
    return json_format.ParseDict(data, RESULT_TYPES[stage](), ignore_unknown_fields=True)


def dataset_proto(spec: FlowSpec, npz: dict[str, Any] | None) -> common_pb2.DatasetSpec:
    """The spec's dataset section as a DatasetSpec (uploaded data by ref)."""
    d = spec.dataset
    msg = common_pb2.DatasetSpec(encoding=d.encoding, batch_size=d.batch_size, seed=d.seed,
                                 test_fraction=float(d.test_fraction), threshold=float(d.threshold))
    if npz is not None:
        msg.npz.CopyFrom(ref_msg(npz))
    else:
        msg.builtin = d.name
    return msg


def _dataset_config(spec: FlowSpec) -> dict[str, Any]:
    return asdict(spec.dataset)


def _data_inputs(npz: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {"dataset": npz} if npz is not None else {}


def plan(stage: str, spec: FlowSpec, results: dict[str, Any], npz: dict[str, Any] | None) -> StagePlan:
    """The plan of ``stage`` given the results of the earlier stages (result messages by stage)."""
    net = spec.net_spec.to_dict()
    if stage == "train":
        if spec.model is not None:
            return StagePlan(stage, None, skip_reason="model given (model.artifact): no training")
        t = spec.train
        request = trainer_pb2.TrainRequest(
            net_dict=convert.net_dict_to_proto(net), dataset=dataset_proto(spec, npz),
            config=trainer_pb2.TrainConfig(epochs=t.epochs, lr=float(t.lr), loss=t.loss, optimizer=t.optimizer,
                                           seed=t.seed))
        return StagePlan(stage, request, _data_inputs(npz),
                         {"dataset": _dataset_config(spec), "net": net, "train": asdict(t)})
    model = results["train"].model
    if stage == "optimize":
        if spec.select.optim_params is not None:
            return StagePlan(stage, None, skip_reason="select.optim_params is explicit")
        ranges = common_pb2.OptimRanges(**{k: common_pb2.BitRange(min=int(r["min"]), max=int(r["max"]))
                                           for k, r in spec.optimize.ranges.items()})
        hw = spec.optimize.hardware
        settings = optimizer_pb2.SweepSettings(model=model, net_dict=convert.net_dict_to_proto(net),
                                               dataset=dataset_proto(spec, npz), ranges=ranges,
                                               loss=spec.train.loss, events_per_cycle=hw["events_per_cycle"],
                                               neurons_per_cycle=[p or 0 for p in hw["neurons_per_cycle"]])
        policy = {k: v for k, v in spec.select.policy.items() if k != "max_accuracy_drop"}
        request = optimizer_pb2.OptimizeRequest(settings=settings, shard_count=spec.optimize.workers,
                                                max_accuracy_drop=float(spec.select.max_accuracy_drop or 0.0),
                                                policy=optimizer_pb2.SelectPolicy(**policy))
        return StagePlan(stage, request, {"model": ref_dict(model), **_data_inputs(npz)},
                         {"dataset": _dataset_config(spec), "ranges": spec.optimize.ranges,
                          "loss": spec.train.loss, "max_accuracy_drop": spec.select.max_accuracy_drop,
                          "hardware": hw, "policy": policy})
    params = selected_params(spec, results)
    knobs = selected_knobs(spec, results)
    if stage == "hdlgen":  # the VHDL only: its synthesis is the synth stage, beside the simulation
        request = hdlgen_pb2.GenerateRequest(model=model, optim_params=convert.optim_params_to_proto(params),
                                             estimate_resources=False, **knobs)
        inputs, config = {"model": ref_dict(model)}, {"optim_params": params, **knobs}
        if getattr(spec.hdl, "testbench", None):  # the verification kit on test samples
            request.testbench = int(spec.hdl.testbench)
            request.dataset.CopyFrom(dataset_proto(spec, npz))
            inputs.update(_data_inputs(npz))
            config.update(testbench=int(spec.hdl.testbench), dataset=_dataset_config(spec))
        return StagePlan(stage, request, inputs, config)
    if stage == "synth":  # the resource estimate and, with an implement section, place and route
        implement = spec.implement
        if not spec.hdl.resources and implement is None:
            return StagePlan(stage, None, skip_reason="hdl.resources is false")
        request = hdlgen_pb2.GenerateRequest(model=model, optim_params=convert.optim_params_to_proto(params),
                                             estimate_resources=bool(spec.hdl.resources),
                                             resources_method=spec.hdl.resources or "", **knobs)
        config = {"optim_params": params, "resources": bool(spec.hdl.resources), **knobs}
        if spec.hdl.resources == "fast":  # synthesized counts stay cached under the config they had before
            config["resources_method"] = "fast"
        if implement is not None:
            request.implement.CopyFrom(hdlgen_pb2.ImplementRequest(
                target=implement.target, clock_mhz=implement.clock_mhz, speed=implement.speed or 0,
                package=implement.package or "", stream_width=implement.stream_width or 0))
            config["implement"] = asdict(implement)
        return StagePlan(stage, request, {"model": ref_dict(model)}, config)
    if stage == "simulate":
        tar = results["hdlgen"].vhdl_tar
        s = spec.simulate
        request = simulator_pb2.SimulateRequest(model=model, optim_params=convert.optim_params_to_proto(params),
                                                vhdl_tar=tar, dataset=dataset_proto(spec, npz), n_samples=s.samples,
                                                trace=s.trace, workers=s.workers, **knobs)
        return StagePlan(stage, request, {"model": ref_dict(model), "vhdl_tar": ref_dict(tar), **_data_inputs(npz)},
                         {"dataset": _dataset_config(spec), "optim_params": params, "samples": s.samples,
                          "trace": s.trace, **knobs})
    raise ValueError(f"unknown stage {stage!r}")


def given_model_result(ref: dict[str, Any]) -> trainer_pb2.TrainResult:
    """The stand-in train result of a run whose model was given (``model.artifact``, a NIR file)."""
    return trainer_pb2.TrainResult(model=ref_msg(ref))


def selected_params(spec: FlowSpec, results: dict[str, Any]) -> dict[str, int]:
    """The bit-widths to build: the spec's explicit ones, else the optimizer's selection."""
    if spec.select.optim_params is not None:
        return {k: int(v) for k, v in spec.select.optim_params.items()}
    return convert.optim_params_from_proto(results["optimize"].selected)


def selected_knobs(spec: FlowSpec, results: dict[str, Any]) -> dict[str, Any]:
    """The hardware knobs to generate with (GenerateRequest fields): the spec's ``hdl`` section's,
    else the optimizer's selection, else none (the generator's defaults)."""
    opt = results.get("optimize")
    knobs: dict[str, Any] = {}
    if opt is not None and opt.selected_events_per_cycle:
        knobs["events_per_cycle"] = int(opt.selected_events_per_cycle)
        if opt.selected_neurons_per_cycle:
            knobs["neurons_per_cycle"] = [int(opt.selected_neurons_per_cycle)]
    if getattr(spec.hdl, "events_per_cycle", None) is not None:
        knobs["events_per_cycle"] = int(spec.hdl.events_per_cycle)
    if getattr(spec.hdl, "neurons_per_cycle", None) is not None:
        knobs["neurons_per_cycle"] = [int(p) for p in spec.hdl.neurons_per_cycle]
    if getattr(spec.hdl, "row_register", None) is not None:  # the optimizer costs the default (True) only
        knobs["row_register"] = bool(spec.hdl.row_register)
    return knobs


def outputs_of(result: Message) -> dict[str, dict[str, Any]]:
    """The ArtifactRefs of a result message by field name (nested refs as ``a.b``)."""
    out: dict[str, dict[str, Any]] = {}
    for desc, value in result.ListFields():
        if isinstance(value, common_pb2.ArtifactRef):
            out[desc.name] = ref_dict(value)
        elif isinstance(value, Message):  # repeated fields are containers, not messages
            for name, ref in outputs_of(value).items():
                out[f"{desc.name}.{name}"] = ref
    return out


def metrics_of(stage: str, result: Any) -> dict[str, float]:
    """Named numbers of a stage result, as the service reported them."""
    if stage == "train":
        return {"test_accuracy": result.test_accuracy, "epochs": result.epochs, "seconds": result.seconds}
    if stage == "optimize":
        return {"float_accuracy": result.float_accuracy, "selected_accuracy": result.selected_accuracy,
                "n_configs": result.n_configs, "n_feasible": result.n_feasible}
    if stage in ("hdlgen", "synth"):
        out = {k: float(v) for k, v in result.resources.counts.items()}
        if result.HasField("implementation"):
            out.update(fmax_mhz=result.implementation.fmax_mhz, fits=float(result.implementation.fits),
                       met=float(result.implementation.met))
        return out
    if stage == "simulate":
        out = {"samples": result.samples, "mismatches": result.mismatches, "cycles_mean": result.cycles_mean,
               "cycles_min": result.cycles_min, "cycles_max": result.cycles_max}
        for name in ("hw_accuracy", "golden_accuracy"):
            if result.HasField(name):
                out[name] = getattr(result, name)
        return out
    return {}


def check_result(stage: str, result: Any) -> None:
    """Raise :class:`StageFailed` for a result that ends the flow (no config selected)."""
    if stage == "optimize" and result.selection_error:
        raise StageFailed(grpc.StatusCode.FAILED_PRECONDITION, "select.max_accuracy_drop", "NO_CONFIG_SELECTED",
                          result.selection_error)


class CallSlot:
    """The running gRPC calls of a run's stages, so a cancel can stop them from another thread."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._calls: list[Any] = []

    def set(self, call: Any) -> None:
        with self._lock:
            self._calls.append(call)
        if self.cancelled.is_set():
            call.cancel()

    def clear(self, call: Any) -> None:
        with self._lock:
            if call in self._calls:
                self._calls.remove(call)

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel()


def call_stage(clients: StageClients, stage: str, request: Message, slot: CallSlot, policy: RetryPolicy,
               on_progress: Callable[[common_pb2.ProgressEvent], None],
               on_attempt: Callable[[int], None]) -> tuple[Any, int]:
    """Call the stage's streaming RPC until it yields a result; retry on ``UNAVAILABLE``.

    Returns ``(result message, attempts)``. Raises :class:`StageCancelled` when ``slot`` is
    cancelled, :class:`StageFailed` for any other error status (or when retries run out).
    """
    method = clients.method(stage)
    attempt = 0
    first_failure: float | None = None
    while True:
        attempt += 1
        if slot.cancelled.is_set():
            raise StageCancelled(stage)
        on_attempt(attempt)
        stream = method(request, timeout=policy.call_timeout)
        slot.set(stream)
        try:
            result = None
            for response in _responses(stream):
                if response.WhichOneof("event") == "progress":
                    on_progress(response.progress)
                else:
                    result = response.result
            if result is None:
                raise StageFailed(grpc.StatusCode.INTERNAL, "", "NO_RESULT", f"{stage}: stream ended without result")
            return result, attempt
        except grpc.RpcError as err:
            if slot.cancelled.is_set():
                raise StageCancelled(stage) from None
            code = err.code()
            detail = error_detail(err)
            first_failure = time.monotonic() if first_failure is None else first_failure
            in_budget = time.monotonic() - first_failure < policy.budget_s
            if code == grpc.StatusCode.UNAVAILABLE and attempt < policy.max_attempts and in_budget:
                delay = policy.delay(attempt)
                log.warning("%s: UNAVAILABLE (%s); retry %d/%d in %.1fs", stage, detail["message"], attempt + 1,
                            policy.max_attempts, delay)
                if slot.cancelled.wait(delay):
                    raise StageCancelled(stage) from None
                continue
            raise StageFailed(code, detail["field"], detail["reason"] or code.name,
                              f"{stage}: {detail['message'] or code.name}") from None
        finally:
            slot.clear(stream)


def _responses(stream: Any) -> Iterator[Any]:
    yield from stream


def run_graph(run_stage: Callable[[str], None], done: set[str], slot: CallSlot) -> None:
    """Run every stage not in ``done`` (names of succeeded or skipped stages; updated here), each in
    its own thread as soon as the stages it needs (:data:`NEEDS`) are done.

    The first stage that raises cancels the others (through ``slot``); when they have ended, its
    exception is re-raised. A cancelled ``slot`` starts nothing new (:class:`StageCancelled`).
    """
    pending = [name for name in STAGES if name not in done]
    running: dict[str, futures.Future] = {}
    errors: list[BaseException] = []
    with futures.ThreadPoolExecutor(max_workers=len(STAGES), thread_name_prefix="stage") as pool:
        while (pending and not errors) or running:
            if not errors:
                for name in [n for n in pending if all(need in done for need in NEEDS[n])]:
                    if slot.cancelled.is_set():
                        errors.append(StageCancelled(name))
                        break
                    pending.remove(name)
                    running[name] = pool.submit(run_stage, name)
            if not running:
                if pending and not errors:
                    raise RuntimeError(f"stage graph: {', '.join(pending)} can never start")
                break
            finished, _ = futures.wait(running.values(), return_when=futures.FIRST_COMPLETED)
            for name in [n for n, f in running.items() if f in finished]:
                exc = running.pop(name).exception()
                if exc is None:
                    done.add(name)
                    continue
                if not errors and not isinstance(exc, StageCancelled):
                    slot.cancel()  # the run ends: stop the stages running beside the failed one
                errors.append(exc)
    if errors:
        failed = [e for e in errors if not isinstance(e, StageCancelled)]
        raise (failed or errors)[0]


def wait_seconds(start: float) -> float:
    return time.monotonic() - start
