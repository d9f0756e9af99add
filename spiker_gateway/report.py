"""The run report: report.json / report.md plus copies of the plots and VHDL under ``runs/<id>/``.

Every number is read from a stage service's result or its JSON artifacts (simulation report,
resource estimate); nothing is computed here.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import tarfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from google.protobuf.message import Message

from spiker.store import ArtifactRef, ArtifactStore
from spiker_api import convert
from spiker_gateway.run_files import stage_output_keys
from spiker_gateway.stages import result_from_dict

log = logging.getLogger(__name__)

RESOURCE_KEYS = ("lut", "ff", "bram", "dsp")
IMPLEMENT_KEYS = ("target", "part", "package", "speed", "clock_mhz", "fits", "met", "status", "fmax_mhz",
                  "critical_path", "utilisation", "tool_seconds")


def _no_resources() -> dict[str, Any]:
    return dict.fromkeys(RESOURCE_KEYS)


@dataclass(frozen=True)
class RunReport:
    """A run's numbers, built once from its stage results (:func:`build_report`); each field is
    its key in ``report.json`` (:meth:`to_dict`), and report.md (:func:`render_markdown`), the
    CLI's summary and the web pages read it back by attribute (:meth:`from_dict`).

    The nested documents are the library's as written (``resources``: resources.json,
    ``selection``: selection.json, ``implementation``: implement.json's :data:`IMPLEMENT_KEYS`).
    """

    run_id: str = ""
    name: str | None = None
    float_accuracy: float | None = None
    quant_accuracy: float | None = None
    quant_accuracy_source: str | None = None
    #: how many samples each accuracy is over ("float", "quant", "hardware", "train"), and what computed it
    accuracy_samples: dict[str, int | None] = field(default_factory=dict)
    accuracy_sources: dict[str, str] = field(default_factory=dict)
    #: {"configs": n, "feasible": n} when the optimizer swept
    sweep: dict[str, int] | None = None
    events_per_cycle: int | None = None
    #: the generated design's fully parallel layers register the weight ROM's rows (None: not reported)
    row_register: bool | None = None
    bound_events_mean: float | None = None
    hw_accuracy: float | None = None
    golden_accuracy: float | None = None
    mismatches: int = 0
    samples: int = 0
    passed: bool = False
    optim_params: dict[str, int] | None = None
    cycles_mean: float | None = None
    cycles_min: int = 0
    cycles_max: int = 0
    bound_mean: float | None = None
    resources: dict[str, Any] = field(default_factory=_no_resources)
    #: stage name -> {"seconds", "cached", "state", "compute_seconds"}
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    selection: dict[str, Any] | None = None
    #: the cost model's estimate of the selected design (beside the measured ``resources``)
    resources_estimated: dict[str, Any] | None = None
    total_seconds: float | None = None
    store: str | None = None
    implementation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """report.json's document."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """A report.json document (keys it does not have take the defaults; unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def as_report(report: RunReport | Mapping[str, Any]) -> RunReport:
    """``report`` as a :class:`RunReport` (a report.json document is read with :meth:`RunReport.from_dict`)."""
    return report if isinstance(report, RunReport) else RunReport.from_dict(report)


def run_prefix(run_id: str) -> str:
    return f"runs/{run_id}"


def put_named(store: ArtifactStore, key: str, data: bytes, content_type: str) -> None:
    """Write a named (overwritable) non-JSON document, e.g. ``runs/<id>/report.md``."""
    store.put_document(key, data, content_type, overwrite=True)


def _ref(msg: Message | None, name: str) -> ArtifactRef | None:
    """The ArtifactRef field ``name`` of a stage result (None when the stage or the field is unset)."""
    if msg is None or not msg.HasField(name):
        return None
    return convert.ref_from_proto(getattr(msg, name), name)


def _json_artifact(store: ArtifactStore, msg: Message | None, name: str) -> dict[str, Any]:
    ref = _ref(msg, name)
    return {} if ref is None else json.loads(store.get_bytes(ref))


def _optional(msg: Message | None, name: str) -> Any:
    """An ``optional`` field of a stage result; None when the stage or the field is unset."""
    return getattr(msg, name) if msg is not None and msg.HasField(name) else None


def build_report(store: ArtifactStore, run_id: str, spec_dict: dict[str, Any], stages: list[dict[str, Any]],
                 ) -> tuple[RunReport, dict[str, str]]:
    """Write the run's report files to the store; returns ``(report, artifacts)`` (name -> key).

    Each stage's result is read back as its reply message (``result_from_dict``), by attribute."""
    by_name = {s["name"]: s for s in stages}
    results = {name: result_from_dict(name, s["result"]) for name, s in by_name.items() if s.get("result")}
    train, optimize = results.get("train"), results.get("optimize")
    hdlgen, synth, sim = results.get("hdlgen"), results.get("synth"), results.get("simulate")
    sim_doc = _json_artifact(store, sim, "report")
    estimate = next((r.resources for r in (synth, hdlgen) if r is not None and r.HasField("resources")), None)
    resources_doc = _json_artifact(store, estimate, "report")
    selection_doc = _json_artifact(store, optimize, "selection")
    history_doc = _json_artifact(store, train, "history")
    sweep_doc = _json_artifact(store, optimize, "sweep_json")
    artifacts = stage_output_keys(stages)
    prefix = run_prefix(run_id)
    optimized = optimize is not None and by_name["optimize"].get("state") == "succeeded"
    n_sim = sim.samples if sim is not None else 0
    generated_params = (convert.optim_params_from_proto(hdlgen.optim_params)
                        if hdlgen is not None and hdlgen.HasField("optim_params") else None)
    n_test = sweep_doc.get("n_samples") if optimized else history_doc.get("n_test")
    resources = {k: resources_doc.get(k) for k in RESOURCE_KEYS} if resources_doc else _no_resources()
    if resources_doc:
        resources.update({k: v for k, v in resources_doc.items() if k not in resources})
    # place and route (the synth stage with an implement section): the library's ImplementReport as written
    placed = synth.implementation if synth is not None and synth.HasField("implementation") else None
    impl_doc = _json_artifact(store, placed, "report")
    report = RunReport(
        run_id=run_id, name=spec_dict.get("name"),
        float_accuracy=optimize.float_accuracy if optimized else None if train is None else train.test_accuracy,
        quant_accuracy=optimize.selected_accuracy if optimized else _optional(sim, "golden_accuracy"),
        quant_accuracy_source="optimizer sweep (test set)" if optimized else "golden model on simulated samples",
        accuracy_samples={"float": n_test or None, "quant": (n_test or None) if optimized else n_sim or None,
                          "hardware": n_sim or None, "train": history_doc.get("n_train") or None},
        accuracy_sources={
            "float": "float model, the optimizer's reference pass on the test set" if optimized else
            "float model, the last epoch's test pass",
            "quant": "golden integer model at the selected bit-widths, the optimizer's sweep"
            if optimized else "golden integer model on the simulated test samples",
            "hardware": "VHDL in GHDL on the first test samples"},
        sweep={"configs": optimize.n_configs, "feasible": optimize.n_feasible}
        if optimized else None,
        events_per_cycle=sim_doc.get("events_per_cycle"), row_register=_optional(hdlgen, "row_register"),
        bound_events_mean=sim_doc.get("bound_events_mean"),
        hw_accuracy=_optional(sim, "hw_accuracy"), golden_accuracy=_optional(sim, "golden_accuracy"),
        mismatches=sim.mismatches if sim is not None else 0, samples=n_sim,
        passed=sim is not None and sim.passed,
        optim_params=sim_doc.get("optim_params") or generated_params,
        cycles_mean=None if sim is None else sim.cycles_mean, cycles_min=0 if sim is None else sim.cycles_min,
        cycles_max=0 if sim is None else sim.cycles_max, bound_mean=sim_doc.get("bound_mean"),
        resources=resources,
        stages={s["name"]: {"seconds": s.get("seconds", 0.0), "cached": bool(s.get("cached")),
                            "state": s.get("state"), "compute_seconds": s.get("compute_seconds", 0.0)}
                for s in stages},
        artifacts=artifacts,  # the same dict: the copies below add to it
        # the optimizer's choice and why; its cost-model estimate sits beside the measured resources
        selection=selection_doc or None,
        resources_estimated={k: (selection_doc.get("estimate") or {}).get(k) for k in RESOURCE_KEYS}
        if selection_doc else None,
        total_seconds=_total_seconds(stages),
        store=store.describe(),  # repr() would show a local store's server path
        implementation={k: impl_doc.get(k) for k in IMPLEMENT_KEYS} if impl_doc else None)
    # copies under the run: plots and the VHDL folder
    files = {"training.png": (_ref(train, "training_plot"), "image/png"),
             "pareto.png": (_ref(optimize, "pareto_plot"), "image/png")}
    for name, (r, ctype) in files.items():
        if r is not None:
            key = f"{prefix}/plots/{name}"
            put_named(store, key, store.get_bytes(r), ctype)
            artifacts[f"plots/{name}"] = key
    tar = _ref(hdlgen, "vhdl_tar")
    if tar is not None:
        for name, data in _tar_files(store.get_bytes(tar)):
            key = f"{prefix}/vhdl/{name}"
            put_named(store, key, data, "text/plain")
            artifacts[f"vhdl/{name}"] = key
    artifacts["record"] = f"{prefix}/record.json"
    artifacts["report.json"] = f"{prefix}/report.json"
    artifacts["report.md"] = f"{prefix}/report.md"
    store.put_json(f"{prefix}/report.json", report.to_dict(), overwrite=True)
    put_named(store, f"{prefix}/report.md", render_markdown(report).encode(), "text/markdown")
    return report, artifacts


def _total_seconds(stages: list[dict[str, Any]]) -> float | None:
    """Wall time from the first stage's start to the last one's end (stages may overlap)."""
    starts = [s["started_at"] for s in stages if s.get("started_at")]
    ends = [s["finished_at"] for s in stages if s.get("finished_at")]
    return round(max(ends) - min(starts), 3) if starts and ends else None


def _tar_files(data: bytes) -> list[tuple[str, bytes]]:
    """Regular files of a tar with plain names (anything else is skipped)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            name = posixpath.normpath(member.name)
            if not member.isfile() or name.startswith(("/", ".")) or "/" in name:
                log.warning("report: skipping tar member %r", member.name)
                continue
            f = tar.extractfile(member)
            if f is not None:
                out.append((name, f.read()))
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _count(value: Any) -> str:
    """A count as an integer (``0``, ``23615``), a fractional one (half a BRAM) with its fraction."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _accuracy(r: RunReport, kind: str, value: Any) -> str:
    """``0.9472 on 360 test samples (golden integer model ...)``."""
    if value is None:
        return "n/a"
    n = (r.accuracy_samples or {}).get(kind)
    what = "simulated test samples" if kind == "hardware" else "test samples"
    source = (r.accuracy_sources or {}).get(kind)
    return f"{_fmt(value)}" + (f" on {n} {what}" if n else "") + (f" ({source})" if source else "")


#: store-only names whose content a download also holds under another name
DOWNLOADED_AS = {"train.training_plot": "plots/training.png", "optimize.pareto_plot": "plots/pareto.png",
                 "hdlgen.vhdl_tar": "vhdl/", "synth.vhdl_tar": "vhdl/"}
#: what each downloaded file is (report.md's file list)
FILE_NOTES = {"model.pt": "trained model (SpikingNet.save)", "history.json": "training history per epoch",
              "sweep.csv": "bit-width sweep, one row per config and hardware variant", "sweep.json": "the sweep",
              "selection.json": "the selected config and why", "optim_params.json": "the selected bit-widths",
              "sim.json": "GHDL simulation report",
              "resources.json": "resource estimate (yosys counts; hdl.resources: fast: the cost model's)",
              "report.json": "this report's numbers", "record.json": "the run record (spec, stages, timings)",
              "plots/training.png": "training curve", "plots/pareto.png": "accuracy vs. LUTs of the sweep"}


def _files_lines(r: RunReport) -> list[str]:
    """The run's files: those a download writes beside report.md as links, the rest by store key."""
    from spiker_gateway.run_files import download_path

    local: dict[str, str] = {}
    kept: dict[str, str] = {}
    for name, key in sorted(r.artifacts.items()):
        rel = download_path(name)
        if rel is None:
            if name not in DOWNLOADED_AS:
                kept[name] = key
        elif rel != "report.md":
            local.setdefault(rel, name)
    lines = ["## Files", "",
             "Beside this report when downloaded (`spiker run --out DIR`, `spiker get RUN --download DIR`):", ""]
    vhdl = sorted(rel for rel in local if rel.startswith("vhdl/"))
    for rel in sorted(rel for rel in local if not rel.startswith("vhdl/")):
        note = FILE_NOTES.get(rel)
        lines.append(f"- [{rel}]({rel})" + (f": {note}" if note else ""))
    if vhdl:
        lines.append(f"- VHDL ({len(vhdl)} files): " + ", ".join(f"[{posixpath.basename(v)}]({v})" for v in vhdl))
    lines += ["", f"The store ({r.store or 'the gateway store'}) keeps every file by its content key "
              f"(record.json lists them; the VHDL there is one tar)" + (", and these only there:" if kept else "."),
              ""]
    lines += [f"- `{name}`: `{key}`" for name, key in kept.items()]
    return lines


def _bound_rows(r: RunReport) -> list[str]:
    """The event-driven cycle bound at the design's events per cycle, and the one-event bound beside it."""
    e = r.events_per_cycle
    one = (f"| one-event bound (mean) | {_fmt(r.bound_mean, 1)}: sum over steps of the busiest layer's "
           f"input spikes, at 1 event per cycle |")
    if r.bound_events_mean is None or not e or e == 1:
        return [one]
    return [f"| event-driven bound at {e} events/cycle (mean) | {_fmt(r.bound_events_mean, 1)}: sum over steps "
            f"of the busiest layer's ceil(input spikes / {e}) |", one]


def _selection_lines(r: RunReport) -> list[str]:
    """The chosen config and why, and estimated vs. measured resources side by side."""
    sel = r.selection
    if not sel:
        return []
    hw = sel.get("hardware") or {}
    knobs = f"events_per_cycle {hw.get('events_per_cycle')}, neurons_per_cycle " \
            f"{hw.get('neurons_per_cycle') or 'all (fully parallel)'}"
    budget = ", ".join(f"{k}={v:g}" for k, v in (sel.get("budget") or {}).items()) or "none"
    lines = ["## Selection", "",
             f"Chosen: `{sel.get('optim_params')}`, {knobs}: objective **{sel.get('objective')}**, "
             f"budget {budget}, accuracy {_fmt(sel.get('accuracy'))} >= floor {_fmt(sel.get('accuracy_floor'))} "
             f"({sel.get('n_candidates')} candidates qualified).", "",
             f"Why: {sel.get('reason')}", ""]
    runner = sel.get("runner_up")
    if runner:
        est = runner.get("estimate") or {}
        lines += [f"Runner-up: `{runner.get('optim_params')}` {runner.get('hardware')}: accuracy "
                  f"{_fmt(runner.get('accuracy'))}, {_count(est.get('lut'))} LUT, {_count(est.get('ff'))} FF, "
                  f"{_count(est.get('bram'))} BRAM, "
                  f"{_fmt(runner.get('cycles'), 1)} cycles/inference.", ""]
    est, res = sel.get("estimate") or {}, r.resources
    fast = res.get("method") == "fast"
    measured = f"hdl.resources: fast ({res.get('note', 'cost model')})" if fast else "measured (yosys)"
    lines += [f"| resource | estimated (cost model) | {measured} |", "| --- | --- | --- |"]
    lines += [f"| {k.upper()} | {_count(est.get(k))} | {_count(res.get(k))} |" for k in RESOURCE_KEYS]
    lines += [f"| cycles/inference | {_fmt(sel.get('cycles'), 1)} (golden-model activity, test set) | "
              f"{_fmt(r.cycles_mean, 1)} (GHDL, simulated samples) |", ""]
    return lines


def render_markdown(report: RunReport | Mapping[str, Any]) -> str:
    """report.md: the headline numbers with their sample counts and sources, resources, timings, files."""
    r = as_report(report)
    res = r.resources
    sel = r.selection or {}
    knobs = sel.get("hardware") or {}
    e = r.events_per_cycle or knobs.get("events_per_cycle")
    lines = [f"# Run {r.run_id} ({r.name})", "",
             "| metric | value |", "| --- | --- |",
             f"| float accuracy | {_accuracy(r, 'float', r.float_accuracy)} |",
             f"| quantized accuracy | {_accuracy(r, 'quant', r.quant_accuracy)} |",
             f"| hardware accuracy | {_accuracy(r, 'hardware', r.hw_accuracy)} |",
             f"| mismatches / simulated samples | {r.mismatches} / {r.samples} (RTL vs. golden model) |",
             f"| optim_params | {r.optim_params} |"]
    if e:
        rows = {True: ", row register after each weight ROM", False: ", lean layers (no row register)"}
        lines.append(f"| hardware | {e} event{'s' if e != 1 else ''}/cycle, neurons_per_cycle "
                     f"{knobs.get('neurons_per_cycle') or 'all (fully parallel)'}{rows.get(r.row_register, '')} |")
    lines += [f"| cycles per inference (mean, min..max) | {_fmt(r.cycles_mean, 1)} "
              f"({r.cycles_min}..{r.cycles_max}), measured in GHDL |", *_bound_rows(r)]
    if r.sweep:
        lines.append(f"| sweep | {r.sweep['configs']} configs, {r.sweep['feasible']} feasible |")
    label = f" ({res.get('note', 'fast')})" if res.get("method") == "fast" else ""
    lines += [f"| LUT / FF / BRAM / DSP{label} | {_count(res['lut'])} / {_count(res['ff'])} / {_count(res['bram'])} / "
              f"{_count(res['dsp'])} |"]
    impl = r.implementation
    if impl:
        util = ", ".join(f"{k} {u['used']}/{u['available']} ({u['percent']:.1f} %)"
                         for k, u in (impl.get("utilisation") or {}).items())
        path = impl.get("critical_path") or {}
        lines += [f"| place and route ({impl['target']}, {impl['part']} {impl['package']}"
                  f"{', speed ' + str(impl['speed']) if impl.get('speed') else ''}) | {impl['status']} |",
                  f"| utilisation on the part | {util or 'n/a'} |"]
        if path:
            lines.append(f"| critical path | {path.get('start')} -> {path.get('end')} "
                         f"({_fmt(path.get('delay_ns'), 1)} ns, {path.get('logic_levels')} logic levels) |")
    stage_sum = sum(float(s.get("seconds") or 0.0) for s in r.stages.values())
    total = r.total_seconds
    shown = "n/a" if total is None else f"{total:.1f} s"
    lines += [f"| total time | {shown} (first stage start to last stage end; the stage times add up to "
              f"{stage_sum:.1f} s, as synth runs beside simulate) |", ""]
    lines += _selection_lines(r)
    lines += ["| stage | state | seconds | cached |", "| --- | --- | --- | --- |"]
    for name, s in r.stages.items():
        lines.append(f"| {name} | {s['state']} | {s['seconds']:.2f} | {'yes' if s['cached'] else 'no'} |")
    lines += ["", *_files_lines(r)]
    return "\n".join(lines) + "\n"
