"""The sweep's plot: accuracy vs. estimated LUT+FF and vs. cycles per inference, Pareto fronts,
the accuracy floor and the selected config (a Figure of its own: no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spiker.optimize.sweep import Selection, SweepResult

#: marker by (events per cycle, time-multiplexed layers)
MARKERS = {(1, False): "o", (2, False): "^", (1, True): "s", (2, True): "D"}


def plot_sweep(result: SweepResult, path: str | Path, selection: Selection | None = None) -> Path:
    """Write the two-panel trade-off plot of ``result`` to ``path`` (PNG); returns the path."""
    from matplotlib import colormaps, colors
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    cands = result.candidates()
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    floor = selection.accuracy_floor if selection is not None else None
    accs = [c.row.accuracy for c in cands]
    top = max([result.float_accuracy, *accs]) if accs else result.float_accuracy
    low_ref = floor if floor is not None else result.float_accuracy
    band = max(0.03, 2 * (result.float_accuracy - low_ref))  # the floor and a band below it
    bottom = min(max(min(accs, default=0.0), low_ref - band), low_ref) - 0.005
    hidden = sum(1 for a in accs if a < bottom)
    wbs = sorted({c.row.weights_bw for c in cands}) or [0]
    bounds = [w - 0.5 for w in wbs] + [wbs[-1] + 0.5]
    cmap = colors.ListedColormap([colormaps["viridis"](i / max(1, len(wbs) - 1)) for i in range(len(wbs))])
    norm = colors.BoundaryNorm(bounds, cmap.N)
    panels = ((axes[0], "lut_ff", "estimated LUT + FF (cost model)", "LUT+FF"),
              (axes[1], "cycles", "cycles per inference (golden-model activity, test-set mean)", "cycles"))
    scatter = None
    for ax, cost, xlabel, short in panels:
        for (events, tm), marker in MARKERS.items():
            sub = [c for c in cands if c.hw.events_per_cycle == events and (c.hw.neurons_per_cycle is not None) == tm
                   and c.row.accuracy >= bottom]
            if not sub:
                continue
            scatter = ax.scatter([getattr(c.hw, cost) for c in sub], [c.row.accuracy for c in sub],
                                 c=[c.row.weights_bw for c in sub], cmap=cmap, norm=norm, marker=marker,
                                 s=22, alpha=0.7, edgecolors="none")
        front = [c for c in result.pareto_front(cost) if c.row.accuracy >= bottom]
        if front:
            ax.step([getattr(c.hw, cost) for c in front], [c.row.accuracy for c in front], "r-", where="post",
                    lw=1.2, alpha=0.8)
            ax.plot([getattr(c.hw, cost) for c in front], [c.row.accuracy for c in front], "o", mfc="none",
                    mec="red", ms=8, mew=1.0)
            chosen = selection.candidate if selection is not None else None
            for c in front[-5:]:
                if chosen is not None and c.row.key == chosen.row.key and c.hw == chosen.hw:
                    continue
                ax.annotate(c.label(), (getattr(c.hw, cost), c.row.accuracy), fontsize=7, color="darkred",
                            textcoords="offset points", xytext=(4, 4))
        ax.axhline(result.float_accuracy, color="gray", ls="--", lw=1)
        if floor is not None:
            ax.axhline(floor, color="tab:red", ls=":", lw=1.5)
        if selection is not None:
            c = selection.candidate
            x = getattr(c.hw, cost)
            ax.plot([x], [c.row.accuracy], marker="*", color="gold", mec="black", ms=18, zorder=5)
            ax.annotate(f"selected {c.label()}\n{getattr(c.hw, cost):,.0f} {short}, accuracy {c.row.accuracy:.3f}",
                        (x, c.row.accuracy), fontsize=8, weight="bold", textcoords="axes fraction",
                        xytext=(0.03, 0.06), arrowprops={"arrowstyle": "->", "color": "black", "lw": 0.8})
        xs = [getattr(c.hw, cost) for c in cands]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 8:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("accuracy (golden integer model, test set)")
    axes[0].set_ylim(bottom, top + 0.01)
    present = {(c.hw.events_per_cycle, c.hw.neurons_per_cycle is not None) for c in cands}
    handles = [Line2D([], [], ls="", marker=m, color="gray",
                      label=f"{e} event{'s' if e > 1 else ''}/cycle" + (", P < N (time-multiplexed)" if tm else ""))
               for (e, tm), m in MARKERS.items() if (e, tm) in present]
    handles += [Line2D([], [], color="red", marker="o", mfc="none", label="Pareto front (accuracy, cost)"),
                Line2D([], [], color="gray", ls="--", label=f"float {result.float_accuracy:.3f}")]
    if floor is not None:
        handles.append(Line2D([], [], color="tab:red", ls=":", label=f"accuracy floor {floor:.3f}"))
    if selection is not None:
        handles.append(Line2D([], [], ls="", marker="*", color="gold", mec="black", ms=12, label="selected"))
    if hidden:
        handles.append(Line2D([], [], ls="", label=f"{hidden} points below {bottom:.2f} not shown"))
    axes[1].legend(handles=handles, loc="lower right", fontsize=8)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=list(axes), ticks=wbs, pad=0.01)
        bar.set_label("weights_bw (bits)")
    title = "Bit-width and hardware sweep (labels: weights_bw/neurons_bw/fp_dec, knobs)"
    if selection is not None:
        title += f"; objective {selection.objective}"
        if selection.budget:
            title += " under " + ", ".join(f"{k}={v:g}" for k, v in selection.budget.items())
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path

