"""One progress policy: bars on a terminal, plain lines elsewhere (no carriage returns), heartbeats."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from spiker import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch):  # noqa: ANN001, ANN202
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    saved = progress.INTERVAL
    progress.configure("auto")
    yield
    progress.configure("auto", saved)


def test_mode_follows_the_terminal(monkeypatch) -> None:  # noqa: ANN001
    assert progress.mode(io.StringIO()) == "lines" and progress.mode(_Tty()) == "bar"
    monkeypatch.setenv(progress.ENV_VAR, "off")
    assert progress.mode(_Tty()) == "off"
    progress.configure("lines")
    assert progress.mode(_Tty()) == "lines"
    with pytest.raises(ValueError, match="progress mode"):
        progress.configure("fancy")


def test_plain_lines_are_throttled_and_end_with_the_total(caplog, capsys) -> None:  # noqa: ANN001
    progress.configure("lines", interval=3600)
    with caplog.at_level(logging.INFO, "spiker.progress"):
        bar = progress.progress(range(50), desc="sweep", unit="configs")
        for _ in bar:
            bar.set_postfix(acc=0.123456)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["sweep: 50/50 configs acc 0.123"]  # one line, not 50 redraws
    assert "\r" not in capsys.readouterr().err
    progress.configure(interval=0)
    caplog.clear()
    with caplog.at_level(logging.INFO, "spiker.progress"), progress.progress(total=3, desc="sim", unit="samples") as p:
        for _ in range(3):
            p.update()
    assert [r.getMessage() for r in caplog.records] == [f"sim: {i}/3 samples" for i in (1, 2, 3)]


def test_disabled_progress_says_nothing(caplog) -> None:  # noqa: ANN001
    progress.configure("lines", interval=0)
    with caplog.at_level(logging.INFO, "spiker.progress"):
        for _ in progress.progress(range(3), desc="x", enabled=False):
            pass
        with progress.heartbeat("y", enabled=False, interval=0.01):
            time.sleep(0.05)
    assert caplog.records == []


def test_heartbeat_while_a_silent_step_runs(caplog) -> None:  # noqa: ANN001
    progress.configure("lines")
    with caplog.at_level(logging.INFO, "spiker.progress"), progress.heartbeat("yosys synthesis", interval=0.05):
        deadline = time.monotonic() + 30  # until the first heartbeat, however loaded the machine
        while not any("running" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("yosys synthesis: running, ") and lines[-1].startswith("yosys synthesis: done in")


def test_fmt_rounds_and_never_prints_none() -> None:
    assert progress.fmt(0.96666666) == "0.967" and progress.fmt(None) == "n/a" and progress.fmt(20466.0) == "20466"
    assert progress.fmt(3) == "3" and progress.fmt(0.5, 1) == "0.5" and progress.fmt(29.0) == "29"


def test_trainer_writes_epoch_lines_without_redraws(capsys, caplog) -> None:  # noqa: ANN001
    import torch

    from spiker import NetBuilder, Trainer

    progress.configure("lines", interval=0)
    net = {"n_cycles": 4, "n_inputs": 6, "layer_0": {"neuron_model": "lif", "n_neurons": 3, "beta": 0.5}}
    snn = NetBuilder(net).build()
    gen = torch.Generator().manual_seed(0)
    batch = ((torch.rand(4, 8, 6, generator=gen) > 0.5).float(), torch.arange(8) % 3)
    with caplog.at_level(logging.INFO):
        Trainer(snn, epochs=2, progress=True).train([batch, batch], [batch])
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("epoch 1: train loss") for m in messages)
    assert any(m.startswith("epoch 1/2: ") and "batch" in m and "loss" in m for m in messages)
    assert "\r" not in capsys.readouterr().err


def _event(**kw):  # noqa: ANN003, ANN202
    from spiker_api.v1 import gateway_pb2

    return gateway_pb2.RunEvent(run_id="r-1", time=0.0, **kw)


def test_run_view_lines_show_messages_not_phase_words() -> None:
    from spiker_api.v1 import common_pb2, gateway_pb2
    from spiker_gateway.watch import LineView

    out = io.StringIO()
    view = LineView(out)
    try:
        view.event(_event(stage_started=gateway_pb2.StageStarted(stage="train", attempt=1)))
        view.event(_event(progress=common_pb2.ProgressEvent(
            stage="train", phase="log", message="epoch 1: train loss 1.0986 acc 0.3810")))
        view.event(_event(progress=common_pb2.ProgressEvent(stage="optimize", phase="shard", message="sweep",
                                                            current=3, total=8)))
        view.event(_event(stage_finished=gateway_pb2.StageRecord(
            name="train", state=gateway_pb2.STAGE_STATE_SUCCEEDED, seconds=5.4321,
            metrics={"test_accuracy": 0.2222222, "seconds": 1.0})))
    finally:
        view.close()
    lines = [ln.split(" ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines == ["train: started", "train: epoch 1: train loss 1.0986 acc 0.3810", "optimize: sweep (3/8)",
                     "train: succeeded in 5.4 s; test_accuracy 0.222"]
    assert "\r" not in out.getvalue()


def test_run_view_heartbeat() -> None:
    from spiker_api.v1 import gateway_pb2
    from spiker_gateway.watch import LineView

    progress.configure(interval=0.01)
    out = io.StringIO()
    view = LineView(out)
    try:
        view.event(_event(stage_started=gateway_pb2.StageStarted(stage="hdlgen", attempt=1)))
        time.sleep(2.5)
    finally:
        view.close()
    assert "hdlgen: running, " in out.getvalue()


def test_summary_is_rounded_without_none_rows(capsys) -> None:  # noqa: ANN001
    from spiker_api.v1 import gateway_pb2
    from spiker_gateway.watch import print_summary

    report = {"float_accuracy": 0.2222222222, "quant_accuracy": 0.2, "hw_accuracy": None, "mismatches": 0,
              "samples": 10, "optim_params": {"weights_bw": 5, "neurons_bw": 8, "fp_dec": 3}, "cycles_mean": 14.7,
              "bound_mean": None, "resources": {"lut": None, "ff": None, "bram": None, "dsp": None},
              "stages": {"train": {"seconds": 5.4, "cached": False, "state": "succeeded"}}}
    run = gateway_pb2.Run(run_id="r-1", name="tiny", state=gateway_pb2.RUN_STATE_SUCCEEDED,
                          report_json=json.dumps(report))
    assert print_summary(run) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "0.222" in out and "0.2222" not in out and "resources" not in out
    assert "hardware" not in out and "cycles/inference: mean 14.7\n" in out
