"""Optimizer: grid search over fixed-point bit-widths, scored by the golden integer model."""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from spiker import readout, threads
from spiker.data import collect
from spiker.errors import InfeasibleConfigError, SpecError
from spiker.golden import FixedPointConfig, QuantizedNet
from spiker.golden.fixed_point import KEYS
from spiker.net.denormals import flush_denormals
from spiker.net.model import SpikingNet
from spiker.net.spec import NetSpec, parse_net_dict
from spiker.optimize.cost_model import CostModel, default_model, shapes_of_quantized
from spiker.optimize.sweep import HardwarePoint, SweepResult, SweepRow
from spiker.progress import progress
from spiker.training.trainer import make_loss

log = logging.getLogger(__name__)

#: Samples per golden-model batch (bounds memory of the [T, B, N] state).
EVAL_BATCH = 1024


def parse_optim_config(optim_config: Any) -> list[FixedPointConfig]:
    """The grid of configs (inclusive ``min..max`` per key) in weights_bw, neurons_bw, fp_dec order."""
    return [FixedPointConfig(*combo) for combo in itertools.product(*optim_ranges(optim_config))]


def count_configs(optim_config: Any) -> int:
    """How many configs the grid of ``optim_config`` has, without building it (validates like parse)."""
    return math.prod(len(r) for r in optim_ranges(optim_config))


def optim_ranges(optim_config: Any) -> list[range]:
    """The validated inclusive ranges of ``optim_config`` in weights_bw, neurons_bw, fp_dec order."""
    if not isinstance(optim_config, Mapping):
        raise SpecError("optim_config", f"must be a dict with {', '.join(KEYS)}, got {type(optim_config).__name__}")
    for key in optim_config:
        if key not in KEYS:
            raise SpecError(f"optim_config.{key}", f"unknown key; allowed: {', '.join(KEYS)}")
    ranges = []
    for key in KEYS:
        if key not in optim_config:
            raise SpecError(f"optim_config.{key}", "is required (a dict with min and max)")
        entry = optim_config[key]
        if not isinstance(entry, Mapping) or set(entry) != {"min", "max"}:
            raise SpecError(f"optim_config.{key}", f"must be {{'min': int, 'max': int}}, got {entry!r}")
        lo, hi = entry["min"], entry["max"]
        for bound, value in (("min", lo), ("max", hi)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SpecError(f"optim_config.{key}.{bound}", f"must be an integer >= 0, got {value!r}")
        if lo > hi:
            raise SpecError(f"optim_config.{key}", f"min ({lo}) is greater than max ({hi})")
        ranges.append(range(lo, hi + 1))
    return ranges


HARDWARE_KEYS = ("events_per_cycle", "neurons_per_cycle")


def parse_hardware(hardware: Mapping[str, Any] | None) -> list[tuple[int, int | None]]:
    """The hardware variants ``(events_per_cycle, neurons_per_cycle)`` every config is costed at.

    ``events_per_cycle``: values in {1, 2} (default both); ``neurons_per_cycle``: positive integers
    or ``None`` for fully parallel layers (default ``[None]``); a layer of at most P neurons is
    fully parallel.
    """
    hardware = {} if hardware is None else hardware
    if not isinstance(hardware, Mapping):
        raise SpecError("hardware", f"must be a dict with {', '.join(HARDWARE_KEYS)}, got {type(hardware).__name__}")
    for key in hardware:
        if key not in HARDWARE_KEYS:
            raise SpecError(f"hardware.{key}", f"unknown key; allowed: {', '.join(HARDWARE_KEYS)}")
    events = hardware.get("events_per_cycle", [1, 2])
    units = hardware.get("neurons_per_cycle", [None])
    for key, values in (("events_per_cycle", events), ("neurons_per_cycle", units)):
        if not isinstance(values, (list, tuple)) or not values:
            raise SpecError(f"hardware.{key}", f"must be a non-empty list, got {values!r}")
    for e in events:
        if isinstance(e, bool) or e not in (1, 2):
            raise SpecError("hardware.events_per_cycle", f"values must be 1 or 2, got {e!r}")
    for p in units:
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 1):
            raise SpecError("hardware.neurons_per_cycle", f"values must be integers >= 1 or null, got {p!r}")
    return [(int(e), p) for p in dict.fromkeys(units) for e in dict.fromkeys(events)]


def shard(configs: list[FixedPointConfig], index: int, count: int) -> list[FixedPointConfig]:
    """Configs of shard ``index`` of ``count`` (round robin, so shards cost about the same)."""
    if not (isinstance(count, int) and count >= 1 and isinstance(index, int) and 0 <= index < count):
        raise SpecError("shard", f"need 0 <= index < count, got index={index!r}, count={count!r}")
    return configs[index::count]


@dataclass
class _Workload:
    """What a worker needs to score configs: the float net's arrays and the test set."""

    spec: NetSpec
    weights: list[np.ndarray]
    thresholds: list[float]
    spikes: np.ndarray  # uint8 [T, N, n]
    labels: np.ndarray
    float_predictions: np.ndarray
    loss: str
    hardware: list[tuple[int, int | None]] = field(default_factory=lambda: [(1, None), (2, None)])
    cost_model: CostModel | None = None


_WORKLOAD: _Workload | None = None


def _init_worker(workload: _Workload) -> None:
    global _WORKLOAD
    _WORKLOAD = workload
    threads.apply(1)  # each sweep worker process is one job of one core (spiker.threads)
    torch.set_flush_denormal(True)


def score_config(workload: _Workload, config: FixedPointConfig) -> SweepRow:
    """Quantize at ``config`` and evaluate the golden model on the whole test set."""
    started = time.perf_counter()
    row = SweepRow(weights_bw=config.weights_bw, neurons_bw=config.neurons_bw, fp_dec=config.fp_dec,
                   feasible=True)
    try:
        qnet = QuantizedNet.from_arrays(workload.spec, workload.weights, workload.thresholds, config)
    except InfeasibleConfigError as exc:
        row.feasible, row.reason = False, exc.reason
        return row
    loss_fn = make_loss(workload.loss)
    n = workload.spikes.shape[1]
    predictions, activity, loss_sum, saturated, updates = [], [], 0.0, 0, 0
    for start in range(0, n, EVAL_BATCH):
        result = qnet.run(torch.from_numpy(workload.spikes[:, start:start + EVAL_BATCH]))
        labels = torch.from_numpy(workload.labels[start:start + EVAL_BATCH])
        loss_sum += float(loss_fn(torch.from_numpy(result.output_spikes).float(), labels)) * len(labels)
        predictions.append(result.predictions)
        activity.append(result.activity)
        saturated += result.saturated_updates
        updates += result.total_updates
    pred = np.concatenate(predictions)
    row.accuracy = float((pred == workload.labels).mean())
    row.loss = loss_sum / n
    row.weight_memory_bits = qnet.weight_memory_bits
    row.saturation_fraction = saturated / updates if updates else 0.0
    row.saturated_weights = qnet.saturated_weights
    row.float_agreement = float((pred == workload.float_predictions).mean())
    row.hardware = hardware_points(workload, qnet, np.concatenate(activity, axis=2))
    row.seconds = time.perf_counter() - started
    return row


def layer_units(spec: NetSpec, neurons_per_cycle: int | None) -> list[int | None]:
    """Per-layer ``neurons_per_cycle`` of a sweep's P value: ``min(P, N_l)`` (a layer of at most P
    neurons is fully parallel); ``None``: every layer fully parallel."""
    if neurons_per_cycle is None:
        return [None] * len(spec.layers)
    return [None if neurons_per_cycle >= layer.n_neurons else neurons_per_cycle for layer in spec.layers]


def inference_cycles(spec: NetSpec, activity: np.ndarray, events: int, neurons_per_cycle: int | None) -> np.ndarray:
    """Cycles per inference of each sample from the golden model's activity ``[L, T, B]``
    (:func:`spiker.hdl.sim.inference_cycles`, the hardware's cycle model)."""
    from spiker.hdl import sim

    units = layer_units(spec, neurons_per_cycle)
    groups = [1 if p is None else math.ceil(layer.n_neurons / p) for layer, p in zip(spec.layers, units)]
    return sim.inference_cycles(activity, events, groups, [layer.neuron_model for layer in spec.layers],
                                n_classes=spec.n_outputs)


def hardware_points(workload: _Workload, qnet: QuantizedNet, activity: np.ndarray) -> list[HardwarePoint]:
    """Each hardware variant's cycles per inference (from the golden model's activity ``[L, T, B]``)
    and the cost model's resources."""
    model = workload.cost_model or default_model()
    config = qnet.config
    shapes = shapes_of_quantized(qnet)
    points = []
    for events, p in workload.hardware:
        cycles = inference_cycles(workload.spec, activity, events, p)
        est = model.estimate(shapes, workload.spec.n_cycles, config, events, layer_units(workload.spec, p))
        points.append(HardwarePoint(events_per_cycle=events, neurons_per_cycle=p,
                                    cycles=round(float(cycles.mean()), 3), cycles_max=int(cycles.max()),
                                    lut=est.lut, ff=est.ff, bram=est.bram, dsp=est.dsp))
    return points


def _score_in_worker(config: FixedPointConfig) -> SweepRow:
    assert _WORKLOAD is not None
    return score_config(_WORKLOAD, config)


class Optimizer:
    """Sweep ``weights_bw``/``neurons_bw``/``fp_dec`` over ``optim_config`` ranges.

    ``net_dict`` (the NetBuilder's) is checked against the trained ``snn``; it may be
    ``None``. ``n_workers`` processes score configs in parallel. ``hardware``: the knobs every
    config is costed at, ``{"events_per_cycle": [1, 2], "neurons_per_cycle": [None, 16]}``
    (default: both E, fully parallel layers; see :func:`parse_hardware`). ``cost_model``: the
    :class:`~spiker.optimize.cost_model.CostModel` (default: the coefficients stored with the code).
    """

    def __init__(self, snn: SpikingNet, net_dict: Mapping[str, Any] | None, optim_config: Mapping[str, Any],
                 n_workers: int = 1, loss: str = "ce_rate", progress: bool = True,
                 hardware: Mapping[str, Any] | None = None, cost_model: CostModel | None = None) -> None:
        if not isinstance(snn, SpikingNet):
            raise TypeError(f"Optimizer needs a trained SpikingNet, got {type(snn).__name__}")
        if net_dict is not None:
            given = parse_net_dict(net_dict)
            if given.sizes != snn.spec.sizes or given.n_cycles != snn.spec.n_cycles:
                raise SpecError("net_dict", f"describes {'-'.join(map(str, given.sizes))} x {given.n_cycles} "
                                f"steps but the network is {'-'.join(map(str, snn.spec.sizes))} x "
                                f"{snn.spec.n_cycles} steps")
        if not isinstance(n_workers, int) or n_workers < 1:
            raise SpecError("n_workers", f"must be a positive integer, got {n_workers!r}")
        make_loss(loss)
        self.snn = snn
        self.configs = parse_optim_config(optim_config)
        self.hardware = parse_hardware(hardware)
        self.cost_model = cost_model or default_model()
        self.n_workers = n_workers
        self.loss = loss
        self.progress = progress
        self.result: SweepResult | None = None

    def _workload(self, test_loader: Iterable) -> tuple[_Workload, float, float]:
        spikes, labels = collect(test_loader, n_cycles=self.snn.spec.n_cycles, n_inputs=self.snn.spec.n_inputs)
        if labels is None:
            raise SpecError("test_loader", "must yield labels to score accuracy")
        net = self.snn.cpu().eval()
        loss_fn = make_loss(self.loss)
        counts, loss_sum = [], 0.0
        # one float pass gives the reference loss, accuracy and predictions (fixed threads: spiker.threads)
        with torch.no_grad(), threads.limit(threads.train_threads()):
            for start in range(0, spikes.shape[1], EVAL_BATCH):
                out = net(torch.from_numpy(spikes[:, start:start + EVAL_BATCH]).float()).spikes
                target = torch.from_numpy(labels[start:start + EVAL_BATCH])
                loss_sum += float(loss_fn(out, target)) * len(target)
                counts.append(out.sum(0).numpy())
        float_predictions = readout.predict(np.concatenate(counts))
        workload = _Workload(
            spec=net.spec, weights=[fc.weight.detach().double().numpy() for fc in net.fcs],
            thresholds=[net.layer_threshold(i) for i in range(len(net.fcs))], spikes=spikes,
            labels=labels, float_predictions=float_predictions, loss=self.loss, hardware=self.hardware,
            cost_model=self.cost_model)
        return workload, float((float_predictions == labels).mean()), loss_sum / len(labels)

    def optimize(self, test_loader: Iterable, shard_index: int = 0, shard_count: int = 1) -> SweepResult:
        """Score every config (or shard ``shard_index`` of ``shard_count``) on the whole loader."""
        configs = shard(self.configs, shard_index, shard_count)
        with flush_denormals():
            return self._optimize(test_loader, configs, shard_index, shard_count)

    def _optimize(self, test_loader: Iterable, configs: list[FixedPointConfig], shard_index: int,
                  shard_count: int) -> SweepResult:
        workload, float_acc, float_loss = self._workload(test_loader)
        log.info("sweeping %d configs on %d samples with %d worker(s); float accuracy %.4f",
                 len(configs), len(workload.labels), self.n_workers, float_acc)
        started = time.perf_counter()
        bar = progress(total=len(configs), desc="sweep", unit="configs", enabled=self.progress)
        rows: list[SweepRow] = []
        workers = threads.workers(self.n_workers)  # no more worker processes than the budget's cores
        if workers == 1:
            for config in configs:
                rows.append(score_config(workload, config))
                bar.update()
        else:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                     initargs=(workload,)) as pool:
                chunk = max(1, len(configs) // (4 * self.n_workers))
                for row in pool.map(_score_in_worker, configs, chunksize=chunk):
                    rows.append(row)
                    bar.update()
        bar.close()
        result = SweepResult(rows=rows, float_accuracy=float_acc, float_loss=float_loss,
                             n_samples=len(workload.labels),
                             meta={"shard_index": shard_index, "shard_count": shard_count,
                                   "seconds": time.perf_counter() - started, "loss": self.loss,
                                   "net": "-".join(map(str, workload.spec.sizes)),
                                   "hardware": [list(h) for h in self.hardware],
                                   "cost_model": self.cost_model.version})
        log.info("sweep done in %.1fs\n%s", result.meta["seconds"], result.table())
        self.result = result
        return result
