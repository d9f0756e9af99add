import numpy as np
import pytest
import torch

from spiker import data
from spiker.data import collect, encode, split_batch
from spiker.errors import DataError


def test_digits_loaders_time_first_and_seeded():
    train, test = data.load("digits", n_cycles=7, batch_size=32, seed=3)
    x, y = next(iter(test))
    assert x.shape == (7, 32, 64) and x.dtype == torch.float32 and y.shape == (32,)
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert len(train.dataset) + len(test.dataset) == 1797
    _, test2 = data.load("digits", n_cycles=7, batch_size=32, seed=3)
    assert torch.equal(next(iter(test2))[0], x)
    _, test3 = data.load("digits", n_cycles=7, batch_size=32, seed=4)
    assert not torch.equal(next(iter(test3))[0], x)


def test_rate_encoding_probability_and_range_check():
    x = np.full((2000, 3), 0.25, dtype=np.float32)
    spikes = encode(x, 10, "rate", seed=0)
    assert spikes.shape == (2000, 10, 3) and abs(spikes.mean() - 0.25) < 0.01
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        encode(x * 8, 10, "rate")


def test_threshold_and_delta_encoders():
    x = np.array([[0.2, 0.7]], dtype=np.float32)
    assert encode(x, 3, "threshold", threshold=0.5)[0].tolist() == [[0, 1]] * 3
    assert encode(x, 3, "delta", threshold=0.5)[0].tolist() == [[0, 1], [0, 0], [0, 0]]
    series = np.array([[[0.0], [0.9], [0.95], [0.1]]], dtype=np.float32)
    assert encode(series, 4, "delta", threshold=0.5)[0, :, 0].tolist() == [0, 1, 0, 0]
    with pytest.raises(DataError, match="unknown encoding"):
        encode(x, 3, "latency")


def test_npz_dataset_with_split_and_spikes(tmp_path):
    rng = np.random.default_rng(0)
    spikes = (rng.random((20, 5, 4)) < 0.5).astype(np.uint8)
    y = np.arange(20) % 3
    split = np.array(["train"] * 15 + ["test"] * 5)
    path = tmp_path / "d.npz"
    np.savez(path, x=spikes, y=y, split=split)
    train, test = data.load(str(path), n_cycles=5, encoding="spikes", batch_size=8)
    assert len(train.dataset) == 15 and len(test.dataset) == 5
    x, labels = collect(test)
    assert np.array_equal(x, spikes[15:].transpose(1, 0, 2)) and np.array_equal(labels, y[15:])


def test_npz_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.load(str(tmp_path / "missing.npz"), n_cycles=3)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 2)))
    with pytest.raises(DataError, match="no array 'y'"):
        data.load(str(bad), n_cycles=3)
    with pytest.raises(DataError, match="unknown dataset"):
        data.load("cifar", n_cycles=3)


def test_split_batch_accepts_both_tuple_shapes():
    x, y = torch.zeros(4, 2, 3), torch.tensor([1, 0])
    assert split_batch((x, y))[1].tolist() == [1, 0]
    assert split_batch((x, "ignored", y))[1].tolist() == [1, 0]
    with pytest.raises(DataError):
        split_batch((x,))
    with pytest.raises(DataError, match=r"\[B\]"):
        split_batch((x, torch.tensor([1, 0, 1])))


@pytest.mark.slow
def test_mnist1d_builtin():
    train, test = data.load("mnist1d", n_cycles=4, batch_size=100)
    x, _ = next(iter(train))
    assert x.shape == (4, 100, 40)
    assert len(train.dataset) == 4000 and len(test.dataset) == 1000


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8])
def test_is_spikes_accepts_zero_and_one_only(dtype):
    base = (torch.arange(60).reshape(3, 4, 5) % 3 == 0).to(dtype)
    assert data.is_spikes(base) and data.is_spikes(base.transpose(0, 1)) and data.is_spikes(base[:0])
    odd = [2, 3, 255] if not dtype.is_floating_point else \
        [0.5, 1.5, 2.0, -1.0, 3.0, 1e4, 0.25, 1 - 2.0 ** -10, 1 + 2.0 ** -10, float("nan"), float("inf"), -float("inf")]
    for value in odd:
        bad = base.clone()
        bad[1, 2, 3] = value
        assert not data.is_spikes(bad), value
    if dtype.is_floating_point:
        signed_zero = base.clone()
        signed_zero[0, 0, 1] = -0.0
        assert data.is_spikes(signed_zero)
    assert data.is_spikes(base.bool()) and data.is_spikes(base.numpy())
