"""``spiker.v1.OptimizerService``: bit-width sweeps as sharded worker processes, merged and selected."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

from spiker.errors import SpecError
from spiker.net.spec import parse_net_dict
from spiker.optimize.optimizer import parse_hardware, parse_optim_config
from spiker.optimize.sweep import OBJECTIVES
from spiker.store import ArtifactNotFound
from spiker_api import convert
from spiker_api.errors import FieldError, remap_field
from spiker_api.v1 import optimizer_pb2, optimizer_pb2_grpc
from spiker_services.common.runtime import Call, Runtime, drain, streaming, unary
from spiker_services.optimizer import task as tasks
from spiker_services.optimizer.job import merge_job, shard_job

log = logging.getLogger(__name__)

#: library keys -> request fields (errors name the request field)
FIELD_MAP = convert.field_map(optimizer_pb2.SweepSettings, "settings.")
SERVICE_NAME = optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name
DEFAULT_MAX_ACCURACY_DROP = 0.01
DEFAULT_LOSS = "ce_rate"
#: most shards one Optimize call runs
MAX_LOCAL_SHARDS = 64


class OptimizerServicer(optimizer_pb2_grpc.OptimizerServiceServicer):
    """Optimize = CreateSweepTask + one job process per shard (or a Kubernetes Job, or Docker containers)
    + MergeSweep."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- helpers ---------------------------------------------------------------------------
    def _task(self, settings: optimizer_pb2.SweepSettings, call: Call) -> tuple[dict[str, Any], int]:
        """Validate the settings; the task document and its number of configs."""
        if not settings.HasField("model"):
            raise FieldError("settings.model", "is required (TrainResult.model)")
        model = convert.ref_from_proto(settings.model, "settings.model")
        if not settings.HasField("dataset"):
            raise FieldError("settings.dataset", "is required")
        dataset, npz = convert.dataset_from_proto(settings.dataset, "settings.dataset")
        if not settings.HasField("ranges"):
            raise FieldError("settings.ranges", "is required (min/max of weights_bw, neurons_bw, fp_dec)")
        ranges = convert.ranges_from_proto(settings.ranges)
        net = convert.net_dict_from_proto(settings.net_dict) if settings.HasField("net_dict") else None
        loss = settings.loss if settings.HasField("loss") else DEFAULT_LOSS
        try:
            configs = parse_optim_config(ranges)
        except SpecError as exc:
            raise FieldError(remap_field(exc.key, FIELD_MAP), exc.message, "SPEC_ERROR") from None
        if net is not None:
            try:
                parse_net_dict(net)
            except SpecError as exc:
                raise FieldError(remap_field(f"net.{exc.key}", FIELD_MAP), exc.message, "SPEC_ERROR") from None
        from spiker.training.trainer import LOSSES

        if loss not in LOSSES:
            raise FieldError("settings.loss", f"must be one of {', '.join(LOSSES)}, got {loss!r}")
        hardware = {}
        if settings.events_per_cycle:
            hardware["events_per_cycle"] = list(settings.events_per_cycle)
        if settings.neurons_per_cycle:
            hardware["neurons_per_cycle"] = [p or None for p in settings.neurons_per_cycle]
        try:
            parse_hardware(hardware)
        except SpecError as exc:
            raise FieldError(exc.key.replace("hardware", "settings"), exc.message, "SPEC_ERROR") from None
        call.require(model, "settings.model")
        if npz is not None:
            call.require(npz, "settings.dataset.npz")
        return tasks.make_task(model, net, ranges, dataset, npz, loss, hardware or None), len(configs)

    @staticmethod
    def _policy(msg: Any) -> dict[str, Any]:
        """The selection policy (objective, budgets) as keyword arguments of SweepResult.select."""
        if not msg.HasField("policy"):
            return {}
        p = msg.policy
        objective = p.objective or "lut"
        if objective not in OBJECTIVES:
            raise FieldError("policy.objective", f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        out: dict[str, Any] = {"objective": objective}
        for key in ("max_lut", "max_ff", "max_bram", "max_cycles"):
            if p.HasField(key):
                if getattr(p, key) < 0:
                    raise FieldError(f"policy.{key}", f"must be >= 0, got {getattr(p, key)}")
                out[key] = getattr(p, key)
        return out

    @staticmethod
    def _shard_count(value: int, n_configs: int, field: str) -> int:
        count = value or 1
        if count < 1 or count > MAX_LOCAL_SHARDS:
            raise FieldError(field, f"must be in 1..{MAX_LOCAL_SHARDS}, got {value}")
        return min(count, n_configs)

    def _merge(self, call: Call, task_key: str, count: int, max_drop: float,
               policy: dict[str, Any] | None = None) -> Iterator[Any]:
        """Fetch the shard results, merge them in a child process, upload; returns OptimizeResult."""
        doc = call.store.get_json(task_key)
        shard_files = []
        for index in range(count):
            key = tasks.shard_key(task_key, index, count)
            try:
                result = call.store.get_json(key)
            except ArtifactNotFound as exc:
                exc.spiker_field = "task_key"  # type: ignore[attr-defined]
                raise
            path = call.workdir / f"shard-{index}.json"
            path.write_text(json.dumps(result))
            shard_files.append(str(path))
        yield call.progress("merging", f"merging {count} shard(s)")
        out = yield from call.run_job(merge_job, shards=shard_files, ranges=doc["ranges"],
                                      max_accuracy_drop=max_drop, policy=policy or {})
        result = optimizer_pb2.OptimizeResult(
            sweep_json=call.put(out.sweep_json, "sweep", "application/json"),
            sweep_csv=call.put(out.sweep_csv, "sweep-csv", "text/csv"),
            pareto_plot=call.put(out.plot, "plot", "image/png"),
            float_accuracy=out.float_accuracy, n_configs=out.n_configs, n_feasible=out.n_feasible,
            task_key=task_key, selection_error=out.selection_error)
        chosen = out.selected
        if chosen is not None:
            result.selected.CopyFrom(convert.optim_params_to_proto(chosen.optim_params))
            result.optim_params.CopyFrom(call.put(chosen.optim_params_file, "optim-params", "application/json"))
            result.selected_accuracy = chosen.accuracy
            result.selection.CopyFrom(call.put(chosen.selection_file, "selection", "application/json"))
            result.selected_events_per_cycle = int(chosen.hardware["events_per_cycle"])
            result.selected_neurons_per_cycle = int(chosen.hardware["neurons_per_cycle"] or 0)
            result.selection_reason = chosen.reason
        return result

    def _run_local(self, call: Call, key: str, count: int) -> Iterator[Any]:
        """Run the sweep worker entry point for every shard, in parallel preloaded job processes."""
        common = {"store_env": self.runtime.worker_env, "task": key, "count": count}  # threads: the runtime's budget
        yield from call.run_jobs(shard_job, [{**common, "index": i} for i in range(count)], "shard")

    @staticmethod
    def _max_drop(msg: Any) -> float:
        if not msg.HasField("max_accuracy_drop"):
            return DEFAULT_MAX_ACCURACY_DROP
        if msg.max_accuracy_drop < 0:
            raise FieldError("max_accuracy_drop", f"must be >= 0, got {msg.max_accuracy_drop}")
        return msg.max_accuracy_drop

    @classmethod
    def _run_on_kubernetes(cls, call: Call, key: str, count: int) -> Iterator[Any]:
        """Run the shards as a Kubernetes Indexed Job (SPIKER_SWEEP_EXECUTOR=kubernetes); yields progress."""
        from spiker_services.optimizer.kubernetes_job import KubernetesSweepExecutor

        executor = KubernetesSweepExecutor.from_env()
        yield from cls._watch_executor(call, key, count, "on Kubernetes",
                                       lambda put, cancel: executor.run(key, count, progress=put, cancel=cancel))

    def _run_on_docker(self, call: Call, key: str, count: int) -> Iterator[Any]:
        """Run the shards as containers on a Docker engine (SPIKER_SWEEP_EXECUTOR=docker); yields progress
        and the containers' log lines."""
        from spiker_services.optimizer.docker_job import DockerSweepExecutor

        executor = DockerSweepExecutor.from_env(store_env=self.runtime.worker_env)
        yield from self._watch_executor(
            call, key, count, "in Docker containers",
            lambda put, cancel: executor.run(key, count, progress=put, cancel=cancel,
                                             on_log=lambda i, line: put(f"shard {i}: {line}")))

    @staticmethod
    def _watch_executor(call: Call, key: str, count: int, where: str,
                        run: Any) -> Iterator[Any]:
        """Run ``run(put, cancel)`` in a thread; yield a progress event per status (or log line) it puts."""
        states: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        outcome: dict[str, BaseException] = {}

        def watch() -> None:
            try:
                run(states.put, cancel)
            except BaseException as exc:  # re-raised in the servicer thread below
                outcome["error"] = exc
            finally:
                states.put(None)

        thread = threading.Thread(target=watch, name=f"sweep-job-{key}", daemon=True)
        thread.start()
        done = 0
        try:
            while True:
                try:
                    state = states.get(timeout=1.0)
                except queue.Empty:
                    call.check()
                    continue
                if state is None:
                    break
                if isinstance(state, str):  # a worker's log line
                    call.check()
                    yield call.progress("shard-log", state[:500], done, count)
                    continue
                done = len(state.succeeded)
                yield call.progress("shard", f"{done}/{count} shard(s) done {where}", done, count)
        finally:
            cancel.set()
            thread.join(timeout=30)
        if "error" in outcome:
            raise outcome["error"]

    # -- RPCs ------------------------------------------------------------------------------
    @streaming("optimize", optimizer_pb2.OptimizeResponse, FIELD_MAP)
    def Optimize(self, request: optimizer_pb2.OptimizeRequest, call: Call) -> Iterator[Any]:  # noqa: N802
        task, n_configs = self._task(request.settings, call)
        count = self._shard_count(request.shard_count, n_configs, "shard_count")
        max_drop = self._max_drop(request)
        policy = self._policy(request)
        yield from call.wait_turn()
        key = tasks.put_task(call.store, task)
        log.info("optimize: %d configs in %d shard(s), task %s", n_configs, count, key)
        yield call.progress("sweeping", f"{n_configs} configs in {count} shard(s); task {key}", 0, count)
        executor = os.environ.get("SPIKER_SWEEP_EXECUTOR", "local")
        if executor == "kubernetes":
            yield from self._run_on_kubernetes(call, key, count)
        elif executor == "docker":
            yield from self._run_on_docker(call, key, count)
        else:
            yield from self._run_local(call, key, count)
        result = yield from self._merge(call, key, count, max_drop, policy)
        yield result

    @unary("optimize", FIELD_MAP)
    def CreateSweepTask(self, request: optimizer_pb2.CreateSweepTaskRequest,  # noqa: N802
                        call: Call) -> optimizer_pb2.SweepTask:
        task, n_configs = self._task(request.settings, call)
        count = self._shard_count(request.shard_count, n_configs, "shard_count")
        key = tasks.put_task(call.store, task)
        return optimizer_pb2.SweepTask(task_key=key, shard_count=count, n_configs=n_configs,
                                       shard_keys=[tasks.shard_key(key, i, count) for i in range(count)])

    @unary("optimize", FIELD_MAP)
    def MergeSweep(self, request: optimizer_pb2.MergeSweepRequest,  # noqa: N802
                   call: Call) -> optimizer_pb2.OptimizeResult:
        if not request.task_key.startswith(tasks.TASK_PREFIX):
            raise FieldError("task_key", f"must be a key under {tasks.TASK_PREFIX} (from CreateSweepTask)")
        if request.shard_count < 1:
            raise FieldError("shard_count", f"must be >= 1, got {request.shard_count}")
        try:
            call.store.get_json(request.task_key)
        except Exception as exc:
            exc.spiker_field = "task_key"  # type: ignore[attr-defined]
            raise
        return drain(self._merge(call, request.task_key, request.shard_count, self._max_drop(request),
                                 self._policy(request)))
