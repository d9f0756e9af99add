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
from typing import Any

from spiker.store import ArtifactRef, ArtifactStore

log = logging.getLogger(__name__)

RESOURCE_KEYS = ("lut", "ff", "bram", "dsp")


def run_prefix(run_id: str) -> str:
    return f"runs/{run_id}"


def put_named(store: ArtifactStore, key: str, data: bytes, content_type: str) -> None:
    """Write a named (overwritable) non-JSON document, e.g. ``runs/<id>/report.md``."""
    store.put_document(key, data, content_type, overwrite=True)


def _ref(data: dict[str, Any] | None) -> ArtifactRef | None:
    return None if not data else ArtifactRef.from_dict(data)


def _json_artifact(store: ArtifactStore, ref: dict[str, Any] | None) -> dict[str, Any]:
    r = _ref(ref)
    return {} if r is None else json.loads(store.get_bytes(r))


def build_report(store: ArtifactStore, run_id: str, spec_dict: dict[str, Any], stages: list[dict[str, Any]],
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """Write the run's report files to the store; returns ``(report, artifacts)`` (name -> key)."""
    by_name = {s["name"]: s for s in stages}
    res = {name: s.get("result") or {} for name, s in by_name.items()}
    train, optimize, hdlgen, sim = res.get("train", {}), res.get("optimize", {}), res.get("hdlgen", {}), \
        res.get("simulate", {})
    sim_doc = _json_artifact(store, sim.get("report"))
    resources_doc = _json_artifact(store, ((res.get("synth") or {}).get("resources") or hdlgen.get("resources")
                                           or {}).get("report"))
    selection_doc = _json_artifact(store, optimize.get("selection"))
    artifacts: dict[str, str] = {}
    for stage in stages:
        for name, ref in (stage.get("outputs") or {}).items():
            artifacts[f"{stage['name']}.{name}"] = ref["key"]
    prefix = run_prefix(run_id)
    optimized = by_name.get("optimize", {}).get("state") == "succeeded"
    report: dict[str, Any] = {
        "run_id": run_id, "name": spec_dict.get("name"),
        "float_accuracy": optimize.get("float_accuracy") if optimized else train.get("test_accuracy"),
        "quant_accuracy": optimize.get("selected_accuracy") if optimized else sim.get("golden_accuracy"),
        "quant_accuracy_source": "optimizer sweep (test set)" if optimized else "golden model on simulated samples",
        "hw_accuracy": sim.get("hw_accuracy"), "golden_accuracy": sim.get("golden_accuracy"),
        "mismatches": int(sim.get("mismatches", 0)), "samples": int(sim.get("samples", 0)),
        "passed": bool(sim.get("passed", False)),
        "optim_params": sim_doc.get("optim_params") or hdlgen.get("optim_params"),
        "cycles_mean": sim.get("cycles_mean"), "cycles_min": int(sim.get("cycles_min", 0)),
        "cycles_max": int(sim.get("cycles_max", 0)), "bound_mean": sim_doc.get("bound_mean"),
        "resources": {k: resources_doc.get(k) for k in RESOURCE_KEYS} if resources_doc else
        {k: None for k in RESOURCE_KEYS},
        "stages": {s["name"]: {"seconds": s.get("seconds", 0.0), "cached": bool(s.get("cached")),
                               "state": s.get("state"), "compute_seconds": s.get("compute_seconds", 0.0)}
                   for s in stages},
        "artifacts": artifacts,
        # the optimizer's choice and why; its cost-model estimate sits beside the measured resources
        "selection": selection_doc or None,
        "resources_estimated": {k: (selection_doc.get("estimate") or {}).get(k) for k in RESOURCE_KEYS}
        if selection_doc else None,
    }
    if resources_doc:
        report["resources"].update({k: v for k, v in resources_doc.items() if k not in report["resources"]})
    # copies under the run: plots and the VHDL folder
    files = {"training.png": (train.get("training_plot"), "image/png"),
             "pareto.png": (optimize.get("pareto_plot"), "image/png")}
    for name, (ref, ctype) in files.items():
        r = _ref(ref)
        if r is not None:
            key = f"{prefix}/plots/{name}"
            put_named(store, key, store.get_bytes(r), ctype)
            artifacts[f"plots/{name}"] = key
    tar = _ref(hdlgen.get("vhdl_tar"))
    if tar is not None:
        for name, data in _tar_files(store.get_bytes(tar)):
            key = f"{prefix}/vhdl/{name}"
            put_named(store, key, data, "text/plain")
            artifacts[f"vhdl/{name}"] = key
    artifacts["record"] = f"{prefix}/record.json"
    artifacts["report.json"] = f"{prefix}/report.json"
    artifacts["report.md"] = f"{prefix}/report.md"
    store.put_json(f"{prefix}/report.json", report, overwrite=True)
    put_named(store, f"{prefix}/report.md", render_markdown(report).encode(), "text/markdown")
    return report, artifacts


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
    return "n/a" if value is None else f"{value:g}"


def _selection_lines(r: dict[str, Any]) -> list[str]:
    """The chosen config and why, and estimated vs. measured resources side by side."""
    sel = r.get("selection")
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
                  f"{_fmt(runner.get('accuracy'))}, {est.get('lut')} LUT, {est.get('ff')} FF, {est.get('bram')} BRAM, "
                  f"{_fmt(runner.get('cycles'), 1)} cycles/inference.", ""]
    est, res = sel.get("estimate") or {}, r["resources"]
    lines += ["| resource | estimated (cost model) | measured (yosys) |", "| --- | --- | --- |"]
    lines += [f"| {k.upper()} | {_count(est.get(k))} | {_count(res.get(k))} |" for k in RESOURCE_KEYS]
    lines += [f"| cycles/inference | {_fmt(sel.get('cycles'), 1)} (golden-model activity, test set) | "
              f"{_fmt(r.get('cycles_mean'), 1)} (GHDL, simulated samples) |", ""]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: the headline numbers, resources and per-stage timings."""
    r = report
    res = r["resources"]
    lines = [f"# Run {r['run_id']} ({r.get('name')})", "",
             "| metric | value |", "| --- | --- |",
             f"| float accuracy | {_fmt(r['float_accuracy'])} |",
             f"| quantized accuracy | {_fmt(r['quant_accuracy'])} ({r['quant_accuracy_source']}) |",
             f"| hardware accuracy | {_fmt(r['hw_accuracy'])} |",
             f"| mismatches / samples | {r['mismatches']} / {r['samples']} |",
             f"| optim_params | {r['optim_params']} |",
             f"| cycles per inference (mean, min..max) | {_fmt(r['cycles_mean'], 1)} "
             f"({r['cycles_min']}..{r['cycles_max']}) |",
             f"| event-driven bound (mean) | {_fmt(r['bound_mean'], 1)} |",
             f"| LUT / FF / BRAM / DSP | {_fmt(res['lut'])} / {_fmt(res['ff'])} / {_fmt(res['bram'])} / "
             f"{_fmt(res['dsp'])} |", ""]
    lines += _selection_lines(r)
    lines += ["| stage | state | seconds | cached |", "| --- | --- | --- | --- |"]
    for name, s in r["stages"].items():
        lines.append(f"| {name} | {s['state']} | {s['seconds']:.2f} | {'yes' if s['cached'] else 'no'} |")
    lines += ["", "Artifacts (store keys):", ""]
    lines += [f"- `{name}`: `{key}`" for name, key in sorted(r["artifacts"].items())]
    return "\n".join(lines) + "\n"
