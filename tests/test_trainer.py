import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spiker import NetBuilder, SpecError, SpikingNet, Trainer, data, readout
from tests.conftest_nets import small_net


def test_prediction_tie_rule_on_hand_made_counts():
    counts = torch.tensor([[0, 0, 0], [1, 3, 3], [5, 2, 5], [0, 1, 0]])
    assert readout.predict(counts).tolist() == [0, 1, 0, 1]
    assert readout.predict(counts.numpy()).tolist() == [0, 1, 0, 1]
    assert readout.accuracy(counts, torch.tensor([0, 2, 0, 1])) == 0.75
    assert readout.correct(counts.numpy(), np.array([1, 1, 2, 1])) == 2


def _tiny_loaders(seed=0, triple=False):
    rng = np.random.default_rng(seed)
    n, t = 64, 6
    y = rng.integers(0, 3, n)
    rates = np.where(np.arange(6)[None, :] // 2 == y[:, None], 0.8, 0.1)
    spikes = (rng.random((n, t, 6)) < rates[:, None, :]).astype(np.float32)

    def batches(idx):
        out = []
        for s in range(0, len(idx), 16):
            b = idx[s:s + 16]
            x = torch.from_numpy(spikes[b]).transpose(0, 1)
            lab = torch.from_numpy(y[b])
            out.append((x, "unused", lab) if triple else (x, lab))
        return out
    return batches(np.arange(48)), batches(np.arange(48, 64))


def test_history_over_whole_loader_and_both_tuple_shapes():
    for triple in (False, True):
        snn = NetBuilder(small_net(sizes=(8, 3), n_cycles=6)).build(seed=0)
        train, test = _tiny_loaders(triple=triple)
        history = Trainer(snn, epochs=2, lr=1e-2, progress=False).train(train, test)
        assert history.epoch == [1, 2]
        assert len(history.test_accuracy) == 2 and len(history.seconds) == 2
        # accuracy over all 16 test samples: a multiple of 1/16
        assert all(abs(a * 16 - round(a * 16)) < 1e-9 for a in history.test_accuracy)
        _, acc = Trainer(snn, progress=False).evaluate(test)
        assert acc == history.test_accuracy[-1]


def test_deterministic_with_seed():
    runs = []
    for _ in range(2):
        snn = NetBuilder(small_net(sizes=(8, 3), n_cycles=6)).build(seed=1)
        train, test = _tiny_loaders()
        history = Trainer(snn, epochs=2, seed=7, progress=False).train(train, test)
        runs.append((snn.fcs[0].weight.detach().clone(), history.to_dict()))
    assert torch.equal(runs[0][0], runs[1][0])
    a, b = runs[0][1], runs[1][1]
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_trainer_rejects_bad_settings():
    snn = NetBuilder(small_net()).build()
    with pytest.raises(SpecError, match="train.loss"):
        Trainer(snn, loss="hinge")
    with pytest.raises(SpecError, match="train.optimizer"):
        Trainer(snn, optimizer="lbfgs")
    with pytest.raises(SpecError, match="train.epochs"):
        Trainer(snn, progress=False).train([], [], epochs=0)
    with pytest.raises(TypeError, match="SpikingNet"):
        Trainer(torch.nn.Linear(2, 2))


def test_history_plot_and_round_trip(tmp_path):
    snn = NetBuilder(small_net(sizes=(8, 3), n_cycles=6)).build(seed=0)
    train, test = _tiny_loaders()
    history = Trainer(snn, epochs=1, progress=False).train(train, test)
    history.plot(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert type(history).from_dict(history.to_dict()) == history


@pytest.mark.slow
def test_digits_example_reaches_95_percent(tmp_path):
    """examples/digits.yaml through the CLI: >= 0.95 test accuracy within 15 epochs."""
    from spiker.cli import main
    from spiker.flow import load_flow_spec

    spec = load_flow_spec("examples/digits.yaml")
    assert spec.train.epochs <= 15
    assert main(["-q", "train", "examples/digits.yaml", "--out", str(tmp_path)]) == 0
    snn = SpikingNet.load(tmp_path / "model.pt")
    _, test = data.load("digits", n_cycles=25, batch_size=256)
    _, acc = Trainer(snn, progress=False).evaluate(test)
    assert acc >= 0.95


def test_loader_of_real_dataloader_type():
    train, _ = data.load("digits", n_cycles=3, batch_size=50)
    assert isinstance(train, DataLoader)


def test_training_flushes_denormals_and_restores_the_callers_mode():
    from spiker.net.denormals import flush_denormals, flushing_denormals

    seen = []

    class Recording(list):
        def __iter__(self):
            seen.append(flushing_denormals())
            return super().__iter__()

    snn = NetBuilder(small_net(sizes=(8, 3), n_cycles=6)).build(seed=0)
    train, test = _tiny_loaders()
    assert not flushing_denormals()
    Trainer(snn, epochs=1, lr=1e-2, progress=False).train(Recording(train), test)
    assert seen and all(seen) and not flushing_denormals()  # iterated for training (and evaluation)
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert flushing_denormals()  # a caller that flushed keeps flushing
    finally:
        torch.set_flush_denormal(False)
    assert not flushing_denormals()


def test_on_epoch_sees_each_epochs_history():
    snn = NetBuilder(small_net(sizes=(8, 3), n_cycles=6)).build(seed=0)
    train, test = _tiny_loaders()
    seen = []
    Trainer(snn, epochs=3, lr=1e-2, progress=False,
            on_epoch=lambda h: seen.append((h.epoch[-1], len(h.test_accuracy)))).train(train, test)
    assert seen == [(1, 1), (2, 2), (3, 3)]
