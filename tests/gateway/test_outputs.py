"""``spiker run --out DIR`` on a held-out style .npz (x_train/x_test, a speaker key): the folder holds
every result, readable by its user, and report.md explains its numbers and links the local files."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from gw_support import ROOT


def held_out_npz(path: Path) -> None:
    """A learnable 3-class set of 8 features: 60 train samples of speakers 0-5, 30 test of speakers 6-8."""
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    x = rng.uniform(0.0, 0.3, size=(90, 8))
    for c in range(3):
        x[y == c, c * 2:c * 2 + 3] += 0.7
    x = np.clip(x, 0, 1).astype(np.float32)
    speaker = np.repeat(np.arange(9), 10)
    order = np.argsort(speaker, kind="stable")
    x, y, speaker = x[order], y[order], speaker[order]
    np.savez(path, x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:], speaker_train=speaker[:60],
             speaker_test=speaker[60:])


def outputs_spec() -> dict:
    """8-6-3 LIF, 2 epochs, a 2-config sweep at 1 event/cycle, resources, 6 simulated samples."""
    return {
        "name": "held-out",
        "dataset": {"name": "speech.npz", "batch_size": 16},
        "net": {"n_cycles": 5, "n_inputs": 8,
                "layer_0": {"neuron_model": "lif", "n_neurons": 6, "beta": 0.75},
                "layer_1": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75}},
        "train": {"epochs": 2, "lr": 0.01},
        "optimize": {"weights_bw": {"min": 5, "max": 6}, "neurons_bw": {"min": 8, "max": 8},
                     "fp_dec": {"min": 3, "max": 3}, "events_per_cycle": [1]},
        "select": {"max_accuracy_drop": 1.0},
        "simulate": {"samples": 6},
    }


@pytest.mark.slow
def test_spiker_run_out_holds_every_result_readable(tmp_path: Path) -> None:
    held_out_npz(tmp_path / "speech.npz")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(outputs_spec()))
    out, store = tmp_path / "out", tmp_path / "store"
    env = {**os.environ, "SPIKER_S3_ENDPOINT": ""}
    proc = subprocess.run([sys.executable, "-m", "spiker_app", "-q", "run", str(tmp_path / "spec.yaml"), "--store",
                           str(store), "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RandomSplitWarning" not in proc.stderr  # the split is given (and speaker-disjoint)
    assert "accuracy: float" in proc.stdout and "on 30 test samples" in proc.stdout
    assert "sweep: 2 configs, 2 feasible" in proc.stdout
    for name in ("model.pt", "history.json", "sweep.csv", "sweep.json", "selection.json", "optim_params.json",
                 "sim.json", "resources.json", "report.md", "report.json", "record.json", "plots/training.png",
                 "plots/pareto.png", "vhdl/files.txt"):
        path = out / name
        assert path.is_file(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, name
    for folder in (out, out / "plots", out / "vhdl"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    history = json.loads((out / "history.json").read_text())
    assert history["n_train"] == 60 and history["n_test"] == 30 and len(history["epoch"]) == 2
    assert len((out / "sweep.csv").read_text().splitlines()) == 3  # header + 2 configs
    assert json.loads((out / "sim.json").read_text())["samples"] == 6
    assert isinstance(json.loads((out / "resources.json").read_text())["lut"], int)

    report = json.loads((out / "report.json").read_text())
    assert report["accuracy_samples"] == {"float": 30, "quant": 30, "hardware": 6, "train": 60}
    assert report["sweep"] == {"configs": 2, "feasible": 2} and report["total_seconds"] > 0
    md = (out / "report.md").read_text()
    assert re.search(r"\| float accuracy \| [\d.]+ on 30 test samples \(float model", md)
    assert re.search(r"\| quantized accuracy \| [\d.]+ on 30 test samples \(golden integer model", md)
    assert re.search(r"\| hardware accuracy \| [\d.]+ on 6 simulated test samples \(VHDL in GHDL", md)
    assert "| sweep | 2 configs, 2 feasible |" in md and "| total time | " in md
    assert "| hardware | 1 event/cycle" in md  # the selected knob reached the simulator (its default is 2)
    assert "one-event bound (mean)" in md and json.loads((out / "sim.json").read_text())["events_per_cycle"] == 1
    lut_row = next(line for line in md.splitlines() if line.startswith("| LUT / FF / BRAM / DSP"))
    assert re.fullmatch(r"\| LUT / FF / BRAM / DSP \| \d+ / \d+ / \d+ / \d+ \|", lut_row)  # counts, not 0.0000
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert "model.pt" in links and "sweep.csv" in links and "vhdl/files.txt" in links
    assert all((out / link).is_file() for link in links), [link for link in links if not (out / link).is_file()]
    assert "The store (local store) keeps every file" in md and str(store) not in md  # no server path


def test_report_md_explains_bounds_counts_and_sources() -> None:
    """Fast: the bound at the design's events per cycle beside the one-event bound, counts as integers."""
    from spiker.hdl.sim import event_bound
    from spiker_gateway.report import render_markdown

    a = np.array([[[5, 0], [3, 1]], [[2, 4], [1, 1]]])  # a[layer, step, sample]
    assert event_bound(a).tolist() == [8, 5] and event_bound(a, 2).tolist() == [5, 3]  # sum_t max_l ceil(a/E)
    report = {"run_id": "r-1", "name": "t", "float_accuracy": 0.95, "quant_accuracy": 0.9472, "hw_accuracy": 0.945,
              "accuracy_samples": {"float": 360, "quant": 360, "hardware": 200},
              "accuracy_sources": {"float": "float model", "quant": "golden", "hardware": "GHDL"},
              "mismatches": 0, "samples": 200, "optim_params": {"weights_bw": 6}, "cycles_mean": 420.0,
              "cycles_min": 400, "cycles_max": 450, "bound_mean": 754.0, "bound_events_mean": 380.5,
              "events_per_cycle": 2, "sweep": {"configs": 175, "feasible": 150}, "total_seconds": 312.4,
              "resources": {"lut": 23615.0, "ff": 900.0, "bram": 0.0, "dsp": 0.0},
              "stages": {"train": {"seconds": 100.0, "cached": False, "state": "succeeded"},
                         "synth": {"seconds": 250.0, "cached": False, "state": "succeeded"}},
              "artifacts": {"train.model": "artifacts/sha256/aa/aa", "hdlgen.vhdl_tar": "artifacts/sha256/bb/bb",
                            "vhdl/top.vhd": "runs/r-1/vhdl/top.vhd", "other.log": "artifacts/sha256/cc/cc"},
              "store": "local store"}
    md = render_markdown(report)
    assert "| float accuracy | 0.9500 on 360 test samples (float model) |" in md
    assert "| hardware accuracy | 0.9450 on 200 simulated test samples (GHDL) |" in md
    assert "| event-driven bound at 2 events/cycle (mean) | 380.5" in md and "| one-event bound (mean) | 754.0" in md
    assert "| LUT / FF / BRAM / DSP | 23615 / 900 / 0 / 0 |" in md and "0.0000" not in md
    assert "| sweep | 175 configs, 150 feasible |" in md and "| total time | 312.4 s" in md
    assert "350.0 s" in md  # the stage times' sum beside the total
    assert "- [model.pt](model.pt)" in md and "[top.vhd](vhdl/top.vhd)" in md
    assert "The store (local store)" in md and "- `other.log`: `artifacts/sha256/cc/cc`" in md
    assert "hdlgen.vhdl_tar`:" not in md  # its files are the vhdl/ links


def test_the_report_names_the_store_without_a_server_path(tmp_path) -> None:  # noqa: ANN001
    """report.json/report.md go to clients: a local store's absolute path stays on the server."""
    from spiker.store import LocalStore
    from spiker_gateway.report import build_report

    root = tmp_path / "secret-server-dir"
    store = LocalStore(root)
    report, artifacts = build_report(store, "r-20260101-000000-0123abcd", {"name": "t"}, [])
    assert report.store == "local store"
    for key in ("report.json", "report.md"):
        text = store.get_bytes(store.ref_for(artifacts.get(key) or f"runs/r-20260101-000000-0123abcd/{key}"))
        assert str(root).encode() not in text and b"secret-server-dir" not in text


def test_fast_resources_are_labelled_with_their_note(capsys) -> None:  # noqa: ANN001
    """hdl.resources: fast prints the estimate's own note (Resources.note), not a label of its own."""
    from spiker_api.v1 import gateway_pb2
    from spiker_gateway.report import render_markdown
    from spiker_gateway.watch import print_summary

    note = "cost-model estimate, not synthesized (spiker.optimize.cost_model, RTL abc123)"
    report = {"run_id": "r-1", "name": "t", "mismatches": 0, "samples": 4,
              "resources": {"lut": 100, "ff": 50, "bram": 1.0, "dsp": 0, "method": "fast", "note": note},
              "selection": {"estimate": {"lut": 90, "ff": 40, "bram": 1.0, "dsp": 0}}}
    md = render_markdown(report)
    assert f"| LUT / FF / BRAM / DSP ({note}) | 100 / 50 / 1 / 0 |" in md
    assert f"hdl.resources: fast ({note})" in md
    run = gateway_pb2.Run(run_id="r-1", name="t", state=gateway_pb2.RUN_STATE_SUCCEEDED,
                          report_json=json.dumps(report))
    assert print_summary(run) == 0
    assert f"resources ({note}): LUT 100" in capsys.readouterr().out


def test_the_report_shows_the_designs_row_register(tmp_path) -> None:  # noqa: ANN001
    """report.json/report.md: row_register as hdlgen generated the design, beside the events per cycle."""
    from spiker.store import LocalStore
    from spiker_api.v1 import hdlgen_pb2
    from spiker_gateway.report import RunReport, build_report, render_markdown
    from spiker_gateway.stages import result_to_dict

    def report_of(result: hdlgen_pb2.GenerateResult) -> RunReport:
        stages = [{"name": "hdlgen", "state": "succeeded", "result": result_to_dict(result)}]
        return build_report(LocalStore(tmp_path / "store"), "r-20260101-000000-0123abcd", {"name": "t"}, stages)[0]

    lean = report_of(hdlgen_pb2.GenerateResult(events_per_cycle=2, row_register=False))
    assert lean.row_register is False and RunReport.from_dict(lean.to_dict()).row_register is False
    assert report_of(hdlgen_pb2.GenerateResult(events_per_cycle=2, row_register=True)).row_register is True
    assert report_of(hdlgen_pb2.GenerateResult(events_per_cycle=2)).row_register is None  # an older service's reply
    doc = {"run_id": "r-1", "name": "t", "events_per_cycle": 2, "cycles_mean": 30.0}
    assert "| hardware | 2 events/cycle, neurons_per_cycle all (fully parallel), lean layers (no row register) |" \
        in render_markdown({**doc, "row_register": False})
    assert "2 events/cycle, neurons_per_cycle all (fully parallel), row register after each weight ROM |" \
        in render_markdown({**doc, "row_register": True})
    assert "2 events/cycle, neurons_per_cycle all (fully parallel) |" in render_markdown(doc)
