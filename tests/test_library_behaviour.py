"""The library behaves the way snnTorch users expect: warnings, seeds, layouts, spike checks, plots."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from conftest_nets import small_net

import spiker
from spiker import NetBuilder, Optimizer, Trainer
from spiker.errors import DataError
from spiker.net import LeakSnapWarning
from spiker.plots import plot_membrane, plot_raster

ROOT = Path(__file__).resolve().parents[1]
RANGES = {"weights_bw": {"min": 6, "max": 6}, "neurons_bw": {"min": 10, "max": 10}, "fp_dec": {"min": 4, "max": 4}}


def _loader(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, y)]


def _spikes(shape, seed=0, p=0.5) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < p).float()


# -- leak snapping --------------------------------------------------------------------------------

def test_snapping_warns_through_warnings_without_logging_configured():
    net = small_net(beta=0.9)
    with pytest.warns(LeakSnapWarning, match=r"layer_0.beta=0.9 is not realisable.*snapped to 0.875"):
        spec = NetBuilder(net).spec
    assert spec.layers[0].beta == 0.875
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NetBuilder(small_net(beta=0.875))  # realisable: no warning


# -- seeds ----------------------------------------------------------------------------------------

def test_build_seed_gives_reproducible_weights_and_leaves_the_global_generator():
    builder = NetBuilder(small_net())
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b, c = builder.build(seed=7), builder.build(seed=7), builder.build(seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for fa, fb, fc in zip(a.fcs, b.fcs, c.fcs):
        assert torch.equal(fa.weight, fb.weight)
        assert not torch.equal(fa.weight, fc.weight)


def test_readme_shows_build_seed_and_trainer_documents_what_it_seeds():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"NetBuilder\(net_dict\)\.build\(seed=\d+\)", readme)
    doc = Trainer.__doc__ or ""
    assert "build(seed=" in doc and "does NOT fix the initial" in doc


# -- layout ---------------------------------------------------------------------------------------

def test_trainer_names_batch_first_input():
    snn = NetBuilder(small_net(n_inputs=4, n_cycles=5)).build(seed=0)
    x, y = _spikes((8, 5, 4)), torch.zeros(8, dtype=torch.long)  # [B=8, T=5, n]
    with pytest.raises(DataError, match=r"looks batch-first \[B, T, n\].*time-first \[T=5, B, 4\]"):
        Trainer(snn, epochs=1, progress=False).train(_loader(x, y), _loader(x, y))


def test_trainer_refuses_other_step_counts_by_layout():
    snn = NetBuilder(small_net(n_inputs=4, n_cycles=5)).build(seed=0)
    x, y = _spikes((7, 3, 4)), torch.zeros(3, dtype=torch.long)
    with pytest.raises(DataError, match=r"has 7 time steps .*time-first.* n_cycles=5"):
        Trainer(snn, epochs=1, progress=False).train(_loader(x, y), _loader(x, y))


def test_optimizer_names_batch_first_input():
    snn = NetBuilder(small_net(n_inputs=4, n_cycles=5)).build(seed=0)
    x, y = _spikes((8, 5, 4)), torch.zeros(8, dtype=torch.long)
    opt = Optimizer(snn, snn.spec.to_dict(), RANGES, progress=False)
    with pytest.raises(DataError, match="looks batch-first"):
        opt.optimize(_loader(x, y))


def test_forward_warns_about_batch_first_looking_input():
    snn = NetBuilder(small_net(n_inputs=4, n_cycles=5)).build(seed=0)
    with pytest.warns(UserWarning, match=r"looks batch-first.*runs as 8 time steps"):
        snn(_spikes((8, 5, 4)))


# -- 0/1 spikes -----------------------------------------------------------------------------------

def test_every_stage_refuses_real_values_with_the_same_message():
    snn = NetBuilder(small_net(n_inputs=4, n_cycles=5)).build(seed=0)
    x = torch.rand(5, 3, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(3, dtype=torch.long)
    messages = []
    with pytest.raises(DataError) as trainer_err:
        Trainer(snn, epochs=1, progress=False).train(_loader(x, y), _loader(x, y))
    messages.append(str(trainer_err.value))
    with pytest.raises(DataError) as optimizer_err:
        Optimizer(snn, snn.spec.to_dict(), RANGES, progress=False).optimize(_loader(x, y))
    messages.append(str(optimizer_err.value))
    qnet = spiker.quantize(snn, {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 4})
    with pytest.raises(DataError) as golden_err:
        qnet.run(x)
    messages.append(str(golden_err.value))
    tails = {m.split(" must be ", 1)[1].split(" (e.g.")[0] for m in messages}
    assert tails == {"0/1 spikes, got other values"}, messages
    assert all("spiker.data.encode" in m for m in messages)


# -- plots ----------------------------------------------------------------------------------------

@pytest.fixture
def no_backend_change(monkeypatch):
    previous = matplotlib.get_backend()
    matplotlib.use("pdf")

    def refuse(*args, **kwargs):
        raise AssertionError("a plot helper called matplotlib.use")

    monkeypatch.setattr(matplotlib, "use", refuse)
    yield
    monkeypatch.undo()
    assert matplotlib.get_backend().lower() == "pdf"
    matplotlib.use(previous)


def test_history_plot_returns_a_figure_takes_ax_and_keeps_the_backend(no_backend_change, tmp_path):
    from matplotlib.figure import Figure

    history = spiker.History(epoch=[1, 2], train_loss=[1.0, 0.5], train_accuracy=[0.3, 0.6],
                             test_loss=[1.1, 0.7], test_accuracy=[0.2, 0.5], seconds=[1.0, 1.0])
    fig = history.plot(tmp_path / "curve.png")
    assert isinstance(fig, Figure) and (tmp_path / "curve.png").stat().st_size > 1000
    own = Figure()
    ax = own.add_subplot(1, 1, 1)
    assert history.plot(ax=ax) is own
    assert len(ax.lines) == 2 and len(own.axes) == 2  # loss on ax, accuracy on its twin


def test_raster_and_membrane_from_a_golden_trace(no_backend_change):
    from matplotlib.figure import Figure

    snn = NetBuilder(small_net(n_inputs=6, n_cycles=12, sizes=(5, 3))).build(seed=1)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(4)
    qnet = spiker.quantize(snn, {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 3})
    result = qnet.run(_spikes((12, 2, 6), p=0.6), trace=True)
    fig = plot_raster(result, layer=0, sample=1)
    assert isinstance(fig, Figure)
    offsets = fig.axes[0].collections[0].get_offsets()
    assert len(offsets) == int(result.traces[0].spikes[:, 1].sum()) > 0
    own = Figure()
    ax = own.add_subplot(1, 1, 1)
    assert plot_membrane(result.traces, layer=-1, neurons=[0, 2], threshold=qnet.layers[-1].threshold, ax=ax) is own
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), result.traces[-1].membrane[:, 0, 0])
    with pytest.raises(ValueError, match="trace=True"):
        plot_raster(qnet.run(_spikes((12, 2, 6))))


@pytest.mark.slow
@pytest.mark.rtl
def test_raster_from_the_simulators_trace(no_backend_change):
    from spiker.hdl import VhdlGenerator

    snn = NetBuilder(small_net(n_inputs=6, n_cycles=8, sizes=(4, 3))).build(seed=2)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(4)
    qnet = spiker.quantize(snn, {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 3})
    x = _spikes((8, 3, 6), p=0.6)
    report = VhdlGenerator(snn, qnet.config.to_dict()).generate().simulate(x, trace=True)
    assert report.mismatches == 0
    golden = qnet.run(x, trace=True)
    for rtl, gold in zip(report.traces, golden.traces):
        np.testing.assert_array_equal(rtl.spikes, gold.spikes)
        np.testing.assert_array_equal(rtl.membrane, gold.membrane)
    fig = plot_raster(report, layer=0, sample=2)
    assert len(fig.axes[0].collections[0].get_offsets()) == int(golden.traces[0].spikes[:, 2].sum())
