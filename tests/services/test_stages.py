"""Each stage over real gRPC on loopback, on the local-directory store and on SeaweedFS S3.

One test walks the whole flow (train -> optimize in 2 worker processes -> generate -> simulate)
per backend and checks the sharded sweep equals the library's in-process sweep.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from svc_support import RANGES, Stack, dataset_spec, drain, ranges_proto, tiny_net, wait_clean

from spiker import data
from spiker.net.model import SpikingNet
from spiker.optimize import Optimizer, SweepResult
from spiker_api.convert import ref_from_proto
from spiker_api.v1 import common_pb2, hdlgen_pb2, optimizer_pb2, simulator_pb2, trainer_pb2


def _rows(result: SweepResult) -> list[dict]:
    rows = result.to_dict()["rows"]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def in_process_sweep(stack: Stack, model: common_pb2.ArtifactRef, tmp: Path) -> SweepResult:
    """The library's own sweep of the same model on the same test split, in this process."""
    snn = SpikingNet.load(stack.store.get_file(ref_from_proto(model, "model"), tmp / "model.pt"))
    npz = stack.store.get_file(ref_from_proto(stack.npz, "npz"), tmp / "data.npz")
    _, test = data.load(str(npz), n_cycles=snn.spec.n_cycles, batch_size=32, seed=0, test_fraction=0.3)
    ranges = {k: {"min": lo, "max": hi} for k, (lo, hi) in RANGES.items()}
    return Optimizer(snn, None, ranges, progress=False).optimize(test)


@pytest.mark.slow
def test_whole_flow(stack: Stack, tmp_path: Path) -> None:
    store = stack.store
    # -- train: epoch progress with metrics, then model, history and plot in the store
    request = trainer_pb2.TrainRequest(net_dict=tiny_net(), dataset=dataset_spec(stack.npz),
                                       config=trainer_pb2.TrainConfig(epochs=2, lr=0.02))
    progress, trained = drain(stack.trainer.Train(request, timeout=120))
    epochs = [p for p in progress if p.phase == "epoch"]
    assert [p.current for p in epochs] == [1, 2] and all(p.total == 2 for p in epochs)
    assert set(epochs[0].metrics) >= {"train_loss", "test_accuracy"}
    assert trained.epochs == 2 and 0.0 <= trained.test_accuracy <= 1.0
    for ref in (trained.model, trained.history, trained.training_plot):
        store.verify(ref_from_proto(ref, "ref"))
        assert ref.bucket == store.bucket
    history = json.loads(store.get_bytes(ref_from_proto(trained.history, "history")))
    assert history["epoch"] == [1, 2]
    stack.offer_model(trained.model)

    # -- optimize in 2 local worker processes: same table as the in-process sweep
    settings = optimizer_pb2.SweepSettings(model=trained.model, dataset=dataset_spec(stack.npz),
                                           ranges=ranges_proto(), net_dict=tiny_net())
    progress, swept = drain(stack.optimizer.Optimize(
        optimizer_pb2.OptimizeRequest(settings=settings, shard_count=2, max_accuracy_drop=1.0), timeout=180))
    shards = [p for p in progress if p.phase == "shard" and p.current > 0]
    assert [p.current for p in shards] == [1, 2] and shards[-1].total == 2
    assert swept.n_configs == 8 and swept.task_key.startswith("tasks/sweep/")
    merged = SweepResult.from_dict(json.loads(store.get_bytes(ref_from_proto(swept.sweep_json, "sweep"))))
    reference = in_process_sweep(stack, trained.model, tmp_path)
    assert _rows(merged) == _rows(reference)
    assert merged.float_accuracy == reference.float_accuracy
    assert swept.HasField("selected") and not swept.selection_error
    chosen = {k: getattr(swept.selected, k) for k in ("weights_bw", "neurons_bw", "fp_dec")}
    assert chosen == reference.select(1.0)
    assert json.loads(store.get_bytes(ref_from_proto(swept.optim_params, "p"))) == chosen
    assert store.get_bytes(ref_from_proto(swept.sweep_csv, "csv")).startswith(b"weights_bw,")
    assert store.get_bytes(ref_from_proto(swept.pareto_plot, "plot"))[:4] == b"\x89PNG"

    # -- generate: a tar of the VHDL files in analysis order
    _, generated = drain(stack.hdlgen.Generate(
        hdlgen_pb2.GenerateRequest(model=trained.model, optim_params=swept.selected), timeout=60))
    assert generated.top_entity == "spiker_top" and "spiker_top.vhd" in generated.files
    tar_bytes = store.get_bytes(ref_from_proto(generated.vhdl_tar, "tar"))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        index = tar.extractfile("files.txt").read().decode().split()
    assert index == list(generated.files)
    again = drain(stack.hdlgen.Generate(
        hdlgen_pb2.GenerateRequest(model=trained.model, optim_params=swept.selected), timeout=60))[1]
    assert again.vhdl_tar == generated.vhdl_tar  # reproducible: same content, same artifact
    assert not generated.HasField("testbench_tar")
    kit = drain(stack.hdlgen.Generate(hdlgen_pb2.GenerateRequest(
        model=trained.model, optim_params=swept.selected, testbench=3, dataset=dataset_spec(stack.npz)),
        timeout=60))[1]
    with tarfile.open(fileobj=io.BytesIO(store.get_bytes(ref_from_proto(kit.testbench_tar, "kit")))) as tar:
        assert tar.extractfile("expected.txt").read().split(b"\n")[0] == b"3"  # three golden results
        assert "spiker_axis_tb.vhd" in tar.extractfile("files.txt").read().decode().split()
        assert "run_ghdl.sh" in tar.getnames()

    # -- simulate that tar: bit-exact with the golden model
    progress, sim = drain(stack.simulator.Simulate(simulator_pb2.SimulateRequest(
        model=trained.model, optim_params=swept.selected, vhdl_tar=generated.vhdl_tar,
        dataset=dataset_spec(stack.npz), n_samples=6, trace=True, wave="vcd", wave_sample=2), timeout=120))
    assert any(p.phase == "simulating" for p in progress)
    assert sim.samples == 6 and sim.mismatches == 0 and sim.passed and sim.cycles_min > 0
    assert b"m_axis_tvalid" in store.get_bytes(ref_from_proto(sim.waveform, "waveform"))  # one sample's VCD
    report = json.loads(store.get_bytes(ref_from_proto(sim.report, "report")))
    assert report["mismatches"] == 0 and report["traced"] is True
    wait_clean(stack.runtime)
