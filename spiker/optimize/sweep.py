"""Sweep results: one row per fixed-point config, persistence, Pareto front and selection."""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from spiker.errors import SpikerError

log = logging.getLogger(__name__)


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

    @property
    def optim_params(self) -> dict[str, int]:
        return {"weights_bw": self.weights_bw, "neurons_bw": self.neurons_bw, "fp_dec": self.fp_dec}

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.weights_bw, self.neurons_bw, self.fp_dec)


_COLUMNS = [f.name for f in fields(SweepRow)]


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


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

    def pareto_front(self) -> list[SweepRow]:
        """Feasible rows not beaten by a config with no more weight memory and higher accuracy."""
        front, best = [], -math.inf
        for row in sorted(self.feasible, key=lambda r: (r.weight_memory_bits, -r.accuracy, r.neurons_bw)):
            if row.accuracy > best:
                front.append(row)
                best = row.accuracy
        return front

    def select(self, max_accuracy_drop: float = 0.01) -> dict[str, int]:
        """The cheapest feasible config (weight memory, then neurons_bw) whose accuracy is at
        least ``float_accuracy - max_accuracy_drop``, as ``optim_params`` for the VhdlGenerator."""
        if not isinstance(max_accuracy_drop, (int, float)) or max_accuracy_drop < 0:
            raise SpikerError(f"max_accuracy_drop must be a number >= 0, got {max_accuracy_drop!r}")
        floor = self.float_accuracy - max_accuracy_drop
        ok = [row for row in self.feasible if row.accuracy >= floor - 1e-12]
        if not ok:
            best = max(self.feasible, key=lambda r: r.accuracy, default=None)
            detail = (f"best is {best.accuracy:.4f} at {best.optim_params}" if best
                      else "no config was feasible")
            raise SpikerError(f"no config reaches accuracy >= {floor:.4f} (float {self.float_accuracy:.4f} "
                              f"- {max_accuracy_drop}); {detail}. Widen the search ranges or allow a "
                              "larger drop.")
        chosen = min(ok, key=lambda r: (r.weight_memory_bits, r.neurons_bw, -r.accuracy, r.fp_dec))
        log.info("selected %s: accuracy %.4f (float %.4f), %d weight bits", chosen.optim_params,
                 chosen.accuracy, self.float_accuracy, chosen.weight_memory_bits)
        return chosen.optim_params

    def table(self) -> str:
        """A fixed-width text table of all rows."""
        head = (f"{'w_bw':>4} {'n_bw':>4} {'fp':>3} {'accuracy':>8} {'loss':>7} {'agree':>6} "
                f"{'sat%':>6} {'wbits':>8}  note")
        lines = [f"float accuracy {self.float_accuracy:.4f} loss {self.float_loss:.4f} "
                 f"on {self.n_samples} samples", head]
        for r in self.rows:
            if r.feasible:
                lines.append(f"{r.weights_bw:>4} {r.neurons_bw:>4} {r.fp_dec:>3} {r.accuracy:>8.4f} "
                             f"{r.loss:>7.4f} {r.float_agreement:>6.3f} {100 * r.saturation_fraction:>6.2f} "
                             f"{r.weight_memory_bits:>8}"
                             + (f"  {r.saturated_weights} weights saturated" if r.saturated_weights else ""))
            else:
                lines.append(f"{r.weights_bw:>4} {r.neurons_bw:>4} {r.fp_dec:>3} {'-':>8} {'-':>7} "
                             f"{'-':>6} {'-':>6} {'-':>8}  infeasible: {r.reason}")
        return "\n".join(lines)

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"float_accuracy": self.float_accuracy, "float_loss": self.float_loss,
                "n_samples": self.n_samples, "meta": self.meta,
                "rows": [{k: _json_number(v) for k, v in asdict(row).items()} for row in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        rows = [SweepRow(**{k: (math.nan if v is None else v) for k, v in row.items()})
                for row in data["rows"]]
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
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_COLUMNS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(asdict(row))
        return path

    def plot_pareto(self, path: str | Path) -> Path:
        """Accuracy vs. weight memory for every feasible config, Pareto front highlighted."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        rows = self.feasible
        scatter = ax.scatter([r.weight_memory_bits / 8192 for r in rows], [r.accuracy for r in rows],
                             c=[r.neurons_bw for r in rows], cmap="viridis", s=18, alpha=0.75)
        fig.colorbar(scatter, ax=ax, label="neurons_bw")
        front = self.pareto_front()
        ax.plot([r.weight_memory_bits / 8192 for r in front], [r.accuracy for r in front], "r.-",
                label="Pareto front")
        for r in front:
            ax.annotate(f"{r.weights_bw}/{r.neurons_bw}/{r.fp_dec}", (r.weight_memory_bits / 8192, r.accuracy),
                        fontsize=7, textcoords="offset points", xytext=(3, -9))
        ax.axhline(self.float_accuracy, color="gray", ls="--", label=f"float {self.float_accuracy:.3f}")
        ax.set(xlabel="weight memory (KiB)", ylabel="accuracy (golden integer model)",
               title="Bit-width sweep (labels: weights_bw/neurons_bw/fp_dec)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

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
