"""User .npz datasets: both layouts, group-disjoint random splits, the random-split warning, errors
that name the user's file and key (once), and the CLI's check before anything is uploaded."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from spiker import data
from spiker.data import datasets
from spiker.data.datasets import RandomSplitWarning
from spiker.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def _xy(n: int = 60, steps: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 5, size=(n, steps, 4) if steps else (n, 4)).astype(np.float32)
    return x, (np.arange(n) % 3).astype(np.int64)


def test_held_out_layout_with_validation_and_groups(tmp_path: Path) -> None:
    x, y = _xy(50, steps=6)
    speaker = np.repeat(np.array([f"s{i}" for i in range(10)]), 5)
    path = tmp_path / "held.npz"
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:], x_val=x[:5], y_val=y[:5],
             speaker_train=speaker[:40], speaker_test=speaker[40:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a given, speaker-disjoint split warns about nothing
        split = datasets.npz(path)
    assert split.x_train.shape == (40, 6, 4) and split.x_test.shape == (10, 6, 4)
    assert np.array_equal(split.y_test, y[40:]) and split.n_classes == 3
    # scaled with the training range: the first test sample's values follow the train min/max
    lo, hi = x[:40].min(), x[:40].max()
    assert np.allclose(split.x_test[0], np.clip((x[40] - lo) / (hi - lo), 0, 1))
    train, test = data.load(str(path), n_cycles=6, batch_size=16)
    assert len(train.dataset) == 40 and len(test.dataset) == 10
    assert next(iter(test))[0].shape == (6, 10, 4)


def test_held_out_groups_that_overlap_are_warned_about(tmp_path: Path) -> None:
    x, y = _xy(20)
    g = np.arange(20) % 4
    path = tmp_path / "leaky.npz"
    np.savez(path, x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:], groups_train=g[:15],
             groups_test=g[15:])
    with pytest.warns(RandomSplitWarning, match="occur in both the train and the test set"):
        datasets.npz(path)


@pytest.mark.parametrize("key", ["groups", "speaker"])
def test_random_split_with_a_group_key_is_group_disjoint_and_seeded(tmp_path: Path, key: str) -> None:
    x, _ = _xy(60)
    groups = np.repeat(np.arange(12), 5)
    path = tmp_path / "grouped.npz"
    np.savez(path, x=x, y=groups, **{key: groups})  # the label names the group, so the split can be read back
    with pytest.warns(RandomSplitWarning, match=f"keeping each {key} value on one side"):
        split = datasets.npz(path, test_fraction=0.25, seed=3)
    assert set(split.y_train) and set(split.y_test) and not set(split.y_train) & set(split.y_test)
    assert len(split.y_test) == 15 and len(split.y_train) == 45
    with pytest.warns(RandomSplitWarning):
        again = datasets.npz(path, test_fraction=0.25, seed=3)
    assert np.array_equal(again.y_test, split.y_test)
    with pytest.warns(RandomSplitWarning):
        other = datasets.npz(path, test_fraction=0.25, seed=4)
    assert set(other.y_test) != set(split.y_test)


def test_a_random_split_without_groups_warns(tmp_path: Path) -> None:
    x, y = _xy(30)
    path = tmp_path / "plain.npz"
    np.savez(path, x=x, y=y)
    with pytest.warns(RandomSplitWarning, match="plain.npz has no split: split at random"):
        split = datasets.npz(path, test_fraction=0.2)
    assert len(split.y_test) == 6
    np.savez(path, x=x, y=y, split=np.array(["train"] * 24 + ["test"] * 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(datasets.npz(path).y_test) == 6


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train="x", y_train="y", x_test="x"), "has no array 'y_test'"),
    (dict(x="x", y="y", x_train="x"), "mixes the layouts"),
    (dict(x="x", y="yf"), "y must hold integer class labels"),
    (dict(x_train="x", y_train="y", x_test="x3", y_test="y"), "x_test has samples of shape [3] but x_train [4]"),
    (dict(x_train="x", y_train="y", x_test="x", y_test="y", groups="g"), "give the group key per part"),
    (dict(x="x", y="y", groups="g", speaker="g"), "give one group key"),
    (dict(x="x", y="y", split="bad"), "split must hold 'train'/'test'"),
    (dict(x="x", y="y", groups="g5"), "groups must be [N] with N = 30"),
    (dict(x="xnan", y="y"), "x must be finite numbers"),
    (dict(x_train="x", y_train="y5", x_test="x", y_test="y"), "x_train has 30 samples but y_train has 5"),
])
def test_errors_name_the_file_and_the_key(tmp_path: Path, arrays: dict[str, str], message: str) -> None:
    x, y = _xy(30)
    pool = {"x": x, "x3": x[:, :3], "xnan": np.where(x > 4, np.nan, x), "y": y, "yf": y.astype(float),
            "y5": y[:5], "g": np.arange(30) % 5, "g5": np.arange(5), "bad": np.array(["dev"] * 30)}
    path = tmp_path / "mine.npz"
    np.savez(path, **{k: pool[v] for k, v in arrays.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomSplitWarning)
        with pytest.raises(DataError) as err:
            datasets.npz(path)
    assert str(err.value).startswith("mine.npz") and message in str(err.value)


def test_label_names_the_users_file_not_a_work_folder(tmp_path: Path) -> None:
    path = tmp_path / "job-123" / "dataset.npz"
    path.parent.mkdir()
    np.savez(path, x=np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"^dataset.npz has no array 'y'"):
        datasets.npz(path)  # an absolute path: its name only
    with pytest.raises(DataError, match=r"^speech.npz has no array 'y'"):
        datasets.npz(path, label="speech.npz")


def test_spiker_run_refuses_a_bad_npz_in_one_line_before_starting(tmp_path: Path) -> None:
    x, y = _xy(30)
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=y, x_test=x)
    spec = {"name": "bad", "dataset": {"name": "bad.npz"},
            "net": {"n_cycles": 3, "n_inputs": 4, "layer_0": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run([sys.executable, "-m", "spiker_app", "run", str(tmp_path / "bad.yaml"), "--store",
                           str(tmp_path / "store")], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "SPIKER_S3_ENDPOINT": "", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert lines == ["spiker: error: bad.npz has no array 'y_test' (found: x_train, y_train, x_test); the "
                     "held-out layout needs x_train, y_train, x_test and y_test"]
    assert "Traceback" not in proc.stderr and not (tmp_path / "store").exists()


def test_the_cli_check_loads_the_data_as_the_train_stage_will(tmp_path: Path) -> None:
    from spiker.flow.spec import load_flow_spec
    from spiker_gateway.cli import check_dataset

    x, y = _xy(30)
    np.savez(tmp_path / "five.npz", x=x, y=y + 2, split=np.arange(30) % 5 == 0)  # labels 2..4
    spec = {"name": "five", "dataset": {"name": "five.npz"},
            "net": {"n_cycles": 3, "n_inputs": 4, "layer_0": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.75}}}
    (tmp_path / "five.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError, match=r"^five.npz: label 4 does not fit the net's 3 outputs"):
        check_dataset(load_flow_spec(tmp_path / "five.yaml"))
    spec["net"]["layer_0"]["n_neurons"] = 5
    (tmp_path / "five.yaml").write_text(yaml.safe_dump(spec))
    check_dataset(load_flow_spec(tmp_path / "five.yaml"))
