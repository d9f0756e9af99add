"""Sweep results: one row per fixed-point config, its hardware variants, Pareto fronts and selection."""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from spiker.errors import SpikerError

log = logging.getLogger(__name__)

OBJECTIVES = ("lut", "latency", "bram")
BUDGETS = ("max_lut", "max_ff", "max_bram", "max_cycles")


@dataclass
class HardwarePoint:
    """One hardware variant of a config: the knobs, the cycles its golden-model activity costs
    (mean and max per inference over the test set) and the cost model's resources."""

    events_per_cycle: int
    neurons_per_cycle: int | None  # None: fully parallel layers (P = N)
    cycles: float
    cycles_max: int
    lut: int
    ff: int
    bram: float
    dsp: int = 0

    @property
    def lut_ff(self) -> int:
        return self.lut + self.ff

    @property
    def knobs(self) -> dict[str, Any]:
        return {"events_per_cycle": self.events_per_cycle, "neurons_per_cycle": self.neurons_per_cycle}

    def label(self) -> str:
        return f"E={self.events_per_cycle}" + ("" if self.neurons_per_cycle is None else f" P={self.neurons_per_cycle}")


@dataclass
class SweepRow:
    """The golden model's score of one config over a whole test set."""

    weights_bw: int
    neurons_bw: int
    fp_dec: int
    feasible: bool
    reason: str = ""
    accuracy: float = math.nan
    loss: float = math.nan
    weight_memory_bits: int = 0
    saturation_fraction: float = math.nan
    saturated_weights: int = 0
    float_agreement: float = math.nan
    seconds: float = 0.0
    hardware: list[HardwarePoint] = field(default_factory=list)

    @property
    def optim_params(self) -> dict[str, int]:
        return {"weights_bw": self.weights_bw, "neurons_bw": self.neurons_bw, "fp_dec": self.fp_dec}

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.weights_bw, self.neurons_bw, self.fp_dec)

    def label(self) -> str:
        return f"{self.weights_bw}/{self.neurons_bw}/{self.fp_dec}"


_COLUMNS = [f.name for f in fields(SweepRow) if f.name != "hardware"]
_HW_COLUMNS = [f.name for f in fields(HardwarePoint)]


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


@dataclass
class Candidate:
    """A config with one hardware variant."""

    row: SweepRow
    hw: HardwarePoint

    def label(self) -> str:
        return f"{self.row.label()} {self.hw.label()}"

    def to_dict(self) -> dict[str, Any]:
        return {"optim_params": self.row.optim_params, "hardware": self.hw.knobs, "accuracy": self.row.accuracy,
                "estimate": {"lut": self.hw.lut, "ff": self.hw.ff, "bram": self.hw.bram, "dsp": self.hw.dsp},
                "cycles": self.hw.cycles, "cycles_max": self.hw.cycles_max}


def _objective_key(objective: str):
    if objective == "lut":
        return lambda c: (c.hw.lut, c.hw.ff, c.hw.bram, -c.row.accuracy, c.hw.cycles, c.row.key)
    if objective == "latency":
        return lambda c: (c.hw.cycles, c.hw.lut_ff, c.hw.bram, -c.row.accuracy, c.row.key)
    return lambda c: (c.hw.bram, c.hw.lut_ff, -c.row.accuracy, c.hw.cycles, c.row.key)


_BUDGET_FIELD = {"max_lut": ("lut", "LUT"), "max_ff": ("ff", "FF"), "max_bram": ("bram", "BRAM"),
                 "max_cycles": ("cycles", "cycles/inference")}


class Selection(dict):
    """The selected ``optim_params`` (a dict, for the VhdlGenerator) plus the hardware knobs and why.

    Attributes: ``hardware`` (``events_per_cycle``, ``neurons_per_cycle``), ``accuracy``,
    ``estimate`` (LUT/FF/BRAM/DSP from the cost model), ``cycles``, ``objective``, ``budget``,
    ``accuracy_floor``, ``runner_up`` (the next candidate by the objective, or None), ``reason``.
    """

    def __init__(self, chosen: Candidate, objective: str, budget: dict[str, float], floor: float,
                 runner_up: Candidate | None, n_candidates: int, reason: str) -> None:
        super().__init__(chosen.row.optim_params)
        self.candidate = chosen
        self.hardware = chosen.hw.knobs
        self.accuracy = chosen.row.accuracy
        self.estimate = chosen.to_dict()["estimate"]
        self.cycles = chosen.hw.cycles
        self.objective = objective
        self.budget = budget
        self.accuracy_floor = floor
        self.runner_up = runner_up
        self.n_candidates = n_candidates
        self.reason = reason

    @property
    def optim_params(self) -> dict[str, int]:
        return dict(self)

    def to_dict(self) -> dict[str, Any]:
        """The whole selection as JSON-ready data (``selection.json``)."""
        return {**self.candidate.to_dict(), "objective": self.objective, "budget": self.budget,
                "accuracy_floor": self.accuracy_floor, "n_candidates": self.n_candidates,
                "runner_up": None if self.runner_up is None else self.runner_up.to_dict(), "reason": self.reason}


@dataclass
class SweepResult:
    """All rows of a sweep plus the float model's reference numbers on the same samples."""

    rows: list[SweepRow]
    float_accuracy: float
    float_loss: float
    n_samples: int
    meta: dict[str, Any] = field(default_factory=dict)

    # -- views -----------------------------------------------------------------------
    @property
    def feasible(self) -> list[SweepRow]:
        return [row for row in self.rows if row.feasible]

    def row(self, weights_bw: int, neurons_bw: int, fp_dec: int) -> SweepRow:
        for row in self.rows:
            if row.key == (weights_bw, neurons_bw, fp_dec):
                return row
        raise KeyError((weights_bw, neurons_bw, fp_dec))

    def candidates(self) -> list[Candidate]:
        """Every feasible config with each of its hardware variants."""
        return [Candidate(row, hw) for row in self.feasible for hw in row.hardware]

    def pareto_front(self, cost: str = "lut_ff") -> list[Candidate]:
        """Candidates not beaten by one with no more ``cost`` (``lut_ff``, ``cycles``, ``bram`` or
        ``weight_memory_bits``) and higher accuracy, in increasing cost."""
        def value(c: Candidate) -> float:
            return c.row.weight_memory_bits if cost == "weight_memory_bits" else getattr(c.hw, cost)

        cands = self.candidates() or [Candidate(r, _NO_HW) for r in self.feasible]
        front: list[Candidate] = []
        best = -math.inf
        for c in sorted(cands, key=lambda c: (value(c), -c.row.accuracy, c.row.key)):
            if c.row.accuracy > best:
                front.append(c)
                best = c.row.accuracy
        return front

    def select(self, max_accuracy_drop: float = 0.01, objective: str = "lut", max_lut: float | None = None,
               max_ff: float | None = None, max_bram: float | None = None, max_cycles: float | None = None,
               ) -> Selection:
        """The best config and hardware variant by ``objective`` among those whose accuracy is at
        least ``float_accuracy - max_accuracy_drop`` and whose estimates fit the budgets.

        ``objective``: ``lut`` (fewest LUTs, then FFs), ``latency`` (fewest mean cycles per
        inference, then LUT+FF) or ``bram`` (fewest block RAMs, then LUT+FF). Returns a
        :class:`Selection`, the chosen ``optim_params`` dict with the knobs and the reason.
        An impossible budget raises :class:`SpikerError` naming the tightest constraint and the
        closest config.
        """
        if isinstance(max_accuracy_drop, bool) or not isinstance(max_accuracy_drop, (int, float)) \
                or max_accuracy_drop < 0:
            raise SpikerError(f"max_accuracy_drop must be a number >= 0, got {max_accuracy_drop!r}")
        if objective not in OBJECTIVES:
            raise SpikerError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        budget = {}
        for name, value in zip(BUDGETS, (max_lut, max_ff, max_bram, max_cycles)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise SpikerError(f"{name} must be a number >= 0, got {value!r}")
            budget[name] = value
        floor = self.float_accuracy - max_accuracy_drop
        ok = [row for row in self.feasible if row.accuracy >= floor - 1e-12]
        if not ok:
            best = max(self.feasible, key=lambda r: r.accuracy, default=None)
            detail = (f"best is {best.accuracy:.4f} at {best.optim_params}" if best
                      else "no config was feasible")
            raise SpikerError(f"no config reaches accuracy >= {floor:.4f} (float {self.float_accuracy:.4f} "
                              f"- {max_accuracy_drop}); {detail}. Widen the search ranges or allow a "
                              "larger drop.")
        cands = [Candidate(row, hw) for row in ok for hw in row.hardware]
        if not cands:
            if budget or objective != "lut":
                raise SpikerError("this sweep has no hardware estimates (it was made by an older version); "
                                  "rerun the sweep to select by hardware cost or budget")
            warnings.warn("sweep without hardware estimates: selecting by weight memory", stacklevel=2)
            cands = [Candidate(row, _NO_HW) for row in ok]
            key = lambda c: (c.row.weight_memory_bits, c.row.neurons_bw, -c.row.accuracy, c.row.fp_dec)  # noqa: E731
        else:
            key = _objective_key(objective)
        fitting = [c for c in cands if all(getattr(c.hw, _BUDGET_FIELD[b][0]) <= v for b, v in budget.items())]
        if not fitting:
            raise SpikerError(_budget_error(cands, budget, floor))
        fitting.sort(key=key)
        chosen = fitting[0]
        runner_up = fitting[1] if len(fitting) > 1 else None
        reason = _reason(chosen, runner_up, objective, budget, floor, len(fitting), len(cands))
        log.info("selected %s", reason)
        return Selection(chosen, objective, budget, floor, runner_up, len(fitting), reason)

    def table(self) -> str:
        """A fixed-width text table of all rows (hardware: the fewest-LUT variant and the fastest)."""
        head = (f"{'w_bw':>4} {'n_bw':>4} {'fp':>3} {'accuracy':>8} {'loss':>7} {'agree':>6} "
                f"{'sat%':>6} {'wbits':>8} {'LUT':>7} {'FF':>6} {'BRAM':>5} {'cycles':>7}  note")
        lines = [f"float accuracy {self.float_accuracy:.4f} loss {self.float_loss:.4f} "
                 f"on {self.n_samples} samples", head]
        for r in self.rows:
            if r.feasible:
                small = min(r.hardware, key=lambda h: (h.lut, h.cycles), default=None)
                hw = (f"{small.lut:>7} {small.ff:>6} {small.bram:>5g} {small.cycles:>7.1f}" if small
                      else f"{'-':>7} {'-':>6} {'-':>5} {'-':>7}")
                lines.append(f"{r.weights_bw:>4} {r.neurons_bw:>4} {r.fp_dec:>3} {r.accuracy:>8.4f} "
                             f"{r.loss:>7.4f} {r.float_agreement:>6.3f} {100 * r.saturation_fraction:>6.2f} "
                             f"{r.weight_memory_bits:>8} {hw}"
                             + (f"  ({small.label()})" if small else "")
                             + (f"  {r.saturated_weights} weights saturated" if r.saturated_weights else ""))
            else:
                lines.append(f"{r.weights_bw:>4} {r.neurons_bw:>4} {r.fp_dec:>3} {'-':>8} {'-':>7} "
                             f"{'-':>6} {'-':>6} {'-':>8} {'-':>7} {'-':>6} {'-':>5} {'-':>7}  "
                             f"infeasible: {r.reason}")
        return "\n".join(lines)

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"float_accuracy": self.float_accuracy, "float_loss": self.float_loss,
                "n_samples": self.n_samples, "meta": self.meta,
                "rows": [{k: _json_number(v) for k, v in asdict(row).items()} for row in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        rows = []
        for raw in data["rows"]:
            row = {k: (math.nan if v is None else v) for k, v in raw.items() if k != "hardware"}
            rows.append(SweepRow(**row, hardware=[HardwarePoint(**h) for h in raw.get("hardware") or []]))
        return cls(rows=rows, float_accuracy=data["float_accuracy"], float_loss=data["float_loss"],
                   n_samples=data["n_samples"], meta=data.get("meta", {}))

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> SweepResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_csv(self, path: str | Path) -> Path:
        """One line per config and hardware variant (a config without variants: one line)."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_COLUMNS + _HW_COLUMNS)
            writer.writeheader()
            for row in self.rows:
                base = {k: v for k, v in asdict(row).items() if k != "hardware"}
                for hw in row.hardware or [None]:
                    writer.writerow({**base, **(asdict(hw) if hw else {})})
        return path

    def plot_pareto(self, path: str | Path, selection: Selection | None = None) -> Path:
        """Accuracy vs. estimated LUT+FF and vs. cycles per inference (see :mod:`spiker.optimize.plots`)."""
        from spiker.optimize.plots import plot_sweep

        return plot_sweep(self, path, selection)

    @classmethod
    def merge(cls, parts: list[SweepResult], order: list[tuple[int, int, int]] | None = None,
              ) -> SweepResult:
        """Join shard results into one table (rows in grid order)."""
        if not parts:
            raise SpikerError("no shard results to merge")
        rows = [row for part in parts for row in part.rows]
        keys = [row.key for row in rows]
        if len(set(keys)) != len(keys):
            raise SpikerError("shard results overlap: a config was evaluated twice")
        rows.sort(key=(lambda r: order.index(r.key)) if order else (lambda r: r.key))
        first = parts[0]
        return cls(rows=rows, float_accuracy=first.float_accuracy, float_loss=first.float_loss,
                   n_samples=first.n_samples, meta=dict(first.meta))


#: placeholder variant of a config in a sweep made without hardware estimates
_NO_HW = HardwarePoint(events_per_cycle=2, neurons_per_cycle=None, cycles=math.nan, cycles_max=0, lut=0, ff=0,
                       bram=0.0)


def _fmt_value(field_name: str, value: float) -> str:
    return f"{value:,.1f}" if field_name == "cycles" else f"{value:,g}"


def _budget_error(cands: list[Candidate], budget: dict[str, float], floor: float) -> str:
    """Which budget is tightest (rules out the most candidates) and the closest candidate."""
    def over(c: Candidate, name: str) -> float:
        limit, value = budget[name], getattr(c.hw, _BUDGET_FIELD[name][0])
        if value <= limit:
            return 0.0
        return math.inf if limit == 0 else value / limit - 1

    closest = min(cands, key=lambda c: (max(over(c, b) for b in budget), sum(over(c, b) for b in budget),
                                        c.row.key))
    ruled_out = {b: sum(1 for c in cands if over(c, b) > 0) for b in budget}
    tightest = max(budget, key=lambda b: (ruled_out[b], over(closest, b)))
    violated = sorted((b for b in budget if over(closest, b) > 0), key=lambda b: b != tightest)
    raise_ = " and ".join(f"{b} to at least {_fmt_value(_BUDGET_FIELD[b][0], getattr(closest.hw, _BUDGET_FIELD[b][0]))}"
                          for b in violated)
    needs = ", ".join(f"{_fmt_value(_BUDGET_FIELD[b][0], getattr(closest.hw, _BUDGET_FIELD[b][0]))} "
                      f"{_BUDGET_FIELD[b][1]} (limit {budget[b]:g})" for b in budget)
    return (f"no config within the accuracy floor {floor:.4f} fits the budget: {tightest}="
            f"{budget[tightest]:g} is the tightest constraint ({ruled_out[tightest]} of {len(cands)} "
            f"candidates exceed it); the closest config is {closest.label()} (accuracy "
            f"{closest.row.accuracy:.4f}), which needs {needs}. Raise {raise_} or allow a larger accuracy drop.")


def _reason(chosen: Candidate, runner_up: Candidate | None, objective: str, budget: dict[str, float],
            floor: float, n_fitting: int, n_cands: int) -> str:
    what = {"lut": "fewest LUTs", "latency": "fewest cycles per inference", "bram": "fewest block RAMs"}[objective]
    hw = chosen.hw
    text = (f"{chosen.label()}: accuracy {chosen.row.accuracy:.4f} >= floor {floor:.4f}; estimated "
            f"{hw.lut:,} LUT, {hw.ff:,} FF, {hw.bram:g} BRAM, {hw.cycles:.1f} cycles/inference; objective "
            f"{objective} ({what}) among {n_cands} candidates (config x hardware knobs) above the floor"
            + (f", {n_fitting} of them within the budget " + ", ".join(f"{k}={v:g}" for k, v in budget.items())
               if budget else ""))
    if runner_up is not None:
        r = runner_up.hw
        text += (f"; runner-up {runner_up.label()}: accuracy {runner_up.row.accuracy:.4f}, {r.lut:,} LUT, "
                 f"{r.ff:,} FF, {r.bram:g} BRAM, {r.cycles:.1f} cycles")
    return text
