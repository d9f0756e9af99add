"""The same spec gives the same numbers through the library, the stage commands and ``spiker run``
(the services), whatever the host's core count; the cache key covers what can change a result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import spiker
from spiker import NetBuilder, Trainer
from spiker.data.datasets import RandomSplitWarning
from spiker.flow import stages
from spiker.flow.spec import load_flow_spec

ROOT = Path(__file__).resolve().parents[1]


def _numbers(history: dict) -> dict:
    """A history without its wall times (the only field that may differ between runs)."""
    return {k: v for k, v in history.items() if k != "seconds"}


def _library_history(spec, threads: int) -> dict:
    """The spec's train stage as the README writes it with the library, at ``threads`` torch threads."""
    ds, t = spec.dataset, spec.train
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # the host's setting: the Trainer runs on its own fixed count
    try:
        train_loader, test_loader = spiker.data.load(ds.name, n_cycles=spec.net_spec.n_cycles, encoding=ds.encoding,
                                                     batch_size=ds.batch_size, seed=ds.seed,
                                                     test_fraction=ds.test_fraction)
        snn = NetBuilder(spec.net).build(seed=t.seed)
        history = Trainer(snn, epochs=t.epochs, lr=t.lr, loss=t.loss, optimizer=t.optimizer, seed=t.seed,
                          progress=False).train(train_loader, test_loader)
    finally:
        torch.set_num_threads(previous)
    return history.to_dict()


def test_readme_library_example_reproduces_the_digits_flow(tmp_path: Path) -> None:
    """The README's library calls carry examples/digits.yaml's numbers, and give the flow's first epoch."""
    spec = load_flow_spec(ROOT / "examples" / "digits.yaml")
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("spiker.data.load(\"digits\""):readme.index("opt = Optimizer")]
    ds, t, net = spec.dataset, spec.train, spec.net_spec
    assert f'spiker.data.load("digits", n_cycles={net.n_cycles}, batch_size={ds.batch_size}, seed={ds.seed})' in block
    assert f"build(seed={t.seed})" in block
    assert re.search(rf"Trainer\(snn, epochs={t.epochs}, lr={t.lr}, seed={t.seed}\)", block)
    assert t.loss == "ce_rate" and t.optimizer == "adam"  # the Trainer's defaults, left out in the README
    one_epoch = replace(spec, train=replace(t, epochs=1))
    _, flow = stages.train(one_epoch, tmp_path / "flow", progress=False)
    assert _numbers(_library_history(one_epoch, threads=2)) == _numbers(flow.to_dict())


def _tiny_npz(path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.uniform(0.0, 0.3, size=(90, 8))
    for c in range(3):
        x[y == c, c * 2:c * 2 + 3] += 0.7
    np.savez(path, x=np.clip(x, 0, 1).astype(np.float32), y=y.astype(np.int64), groups=np.arange(90) % 9)


@pytest.mark.slow
def test_spiker_run_stage_command_and_library_train_alike(tmp_path: Path) -> None:
    _tiny_npz(tmp_path / "tiny.npz")
    doc = {"name": "same", "dataset": {"name": "tiny.npz", "batch_size": 16, "seed": 3, "test_fraction": 0.3},
           "net": {"n_cycles": 5, "n_inputs": 8, "layer_0": {"neuron_model": "lif", "n_neurons": 12, "beta": 0.875},
                   "layer_1": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75}},
           "train": {"epochs": 3, "lr": 0.01, "seed": 5},
           "select": {"optim_params": {"weights_bw": 6, "neurons_bw": 9, "fp_dec": 3}},
           "hdl": {"resources": False}, "simulate": {"samples": 3}}
    (tmp_path / "same.yaml").write_text(yaml.safe_dump(doc))
    env = {**os.environ, "SPIKER_S3_ENDPOINT": "", "SPIKER_CPUS": "2", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-m", "spiker_app", "-q", "run", str(tmp_path / "same.yaml"), "--store",
                           str(tmp_path / "store"), "--out", str(tmp_path / "run")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a random (group-disjoint) split is warned about once, by the CLI, not again by each stage's job
    assert proc.stderr.count("has no split") == 1 and "spiker: warning: tiny.npz has no split" in proc.stderr
    served = json.loads((tmp_path / "run" / "history.json").read_text())
    spec = load_flow_spec(tmp_path / "same.yaml")
    with pytest.warns(RandomSplitWarning):
        _, staged = stages.train(spec, tmp_path / "stage", progress=False)  # `spiker train SPEC`
        library = _library_history(spec, threads=2)
    assert len(served["epoch"]) == 3 and served["n_test"] == 30  # 3 of the 9 groups
    assert _numbers(served) == _numbers(staged.to_dict()) == _numbers(library)


def test_cache_key_changes_with_the_packages_that_change_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    from spiker_gateway import cache

    config = {"train": {"epochs": 1}}
    assert "torch==" in cache.package_versions("train") and "snntorch==" in cache.package_versions("optimize")
    cache.code_version.cache_clear()
    before = cache.cache_key("train", {}, config)
    monkeypatch.setattr(cache, "package_versions", lambda stage=None: "torch==0.0-other")
    cache.code_version.cache_clear()
    try:
        assert cache.cache_key("train", {}, config) != before
    finally:
        monkeypatch.undo()
        cache.code_version.cache_clear()
    assert cache.cache_key("train", {}, config) == before
