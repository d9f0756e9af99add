"""NIR import/export: snnTorch's conventions, Norse-style continuous time, quantized export, errors."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils as snn_utils

import spiker
import spiker.nir as snir
from spiker import NetBuilder
from spiker.errors import SpecError

STEPS = 30


def _spikes(n_inputs: int, batch: int = 6, seed: int = 1, p: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(STEPS, batch, n_inputs, generator=g) < p).float()


def _snntorch_net(reset: str, neuron: str = "leaky") -> torch.nn.Sequential:
    torch.manual_seed(3)
    def cell(beta: float, alpha: float = 0.5):
        if neuron == "synaptic":
            return snn.Synaptic(alpha=alpha, beta=beta, init_hidden=True, reset_mechanism=reset)
        return snn.Leaky(beta=beta, init_hidden=True, reset_mechanism=reset)
    net = torch.nn.Sequential(torch.nn.Linear(8, 6, bias=False), cell(0.9375),
                              torch.nn.Linear(6, 3, bias=False), cell(0.75))
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
    return net


def _run_snntorch(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    snn_utils.reset(net)
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out = net(x[t])
            outs.append(out[0] if isinstance(out, tuple) else out)
    return torch.stack(outs)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_snntorch_leaky_round_trip_equal_spikes(tmp_path, reset):
    net = _snntorch_net(reset)
    path = tmp_path / "net.nir"
    nir.write(path, snir.from_snntorch(net))  # snnTorch's per-module conversion, types fixed
    ours = snir.load(path)
    assert [layer.reset_mechanism for layer in ours.spec.layers] == [reset, reset]
    assert ours.spec.sizes == [8, 6, 3]
    x = _spikes(8)
    ref = _run_snntorch(net, x)
    assert ref.sum() > 0
    assert torch.equal(ours(x).spikes, ref)


def test_snntorch_graph_without_reset_metadata_takes_reset_argument():
    net = _snntorch_net("subtract")
    graph = snir.from_snntorch(net)
    for node in graph.nodes.values():
        node.metadata = {}
    x = _spikes(8)
    ref = _run_snntorch(net, x)
    assert snir.load(graph).spec.layers[0].reset_mechanism == "zero"  # NIR's own semantics
    assert torch.equal(snir.load(graph, reset_mechanism="subtract")(x).spikes, ref)


def test_snntorch_export_to_nir_needs_the_workaround():
    """The trap the docs describe: snnTorch's own export_to_nir fails on this Sequential."""
    from snntorch.export_nir import export_to_nir

    with pytest.raises(ValueError, match="Type inference"):
        export_to_nir(_snntorch_net("subtract"), torch.zeros(1, 8))


def test_snntorch_synaptic_round_trip_equal_spikes():
    net = _snntorch_net("subtract", neuron="synaptic")
    ours = snir.load(snir.from_snntorch(net))
    assert [layer.neuron_model for layer in ours.spec.layers] == ["syn", "syn"]
    x = _spikes(8, p=0.6)
    ref = _run_snntorch(net, x)
    assert ref.sum() > 0
    assert torch.equal(ours(x).spikes, ref)


def _our_net(models=("lif", "syn", "if"), reset="subtract", seed=5):
    net_dict = {"n_cycles": 17, "n_inputs": 10}
    for i, model in enumerate(models):
        layer = {"neuron_model": model, "n_neurons": 7 - i, "threshold": 0.75 + 0.25 * i, "reset_mechanism": reset}
        if model != "if":
            layer["beta"] = 0.875
        if model == "syn":
            layer["alpha"] = 0.5
        net_dict[f"layer_{i}"] = layer
    snn_net = NetBuilder(net_dict).build(seed=seed)
    with torch.no_grad():
        for fc in snn_net.fcs:
            fc.weight.mul_(4)
    return snn_net


@pytest.mark.parametrize("key,value", [("dt", "fast"), ("dt", -1.0), ("n_cycles", 2.5), ("n_cycles", "ten"),
                                       ("weight_scale", 0), ("weight_scale", [1])])
def test_bad_spiker_metadata_is_a_spec_error(key, value):
    """An uploaded file's metadata is input: a one-line SpecError('nir'), never ValueError/INTERNAL."""
    import json

    graph = _our_net(reset="zero").to_nir()
    meta = json.loads(graph.metadata[snir.META_KEY])
    meta[key] = value
    graph.metadata[snir.META_KEY] = json.dumps(meta)
    with pytest.raises(SpecError, match=f"{key} must be a positive"):
        snir.load(graph)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_export_reads_with_nir_and_loads_back(tmp_path, reset):
    net = _our_net(reset=reset)
    path = spiker.nir.save(net, tmp_path / "ours.nir")
    graph = nir.read(path)  # the plain nir reader accepts it
    assert [type(n).__name__ for n in graph.nodes.values()].count("Linear") == 3
    back = snir.load(path)
    assert back.spec == net.spec
    for a, b in zip(back.fcs, net.fcs):
        assert torch.equal(a.weight, b.weight)
    x = _spikes(10)
    assert torch.equal(back(x).spikes, net(x).spikes)
    assert net.to_nir().nodes.keys() == graph.nodes.keys()


def test_export_zero_reset_runs_equal_in_snntorch_import(tmp_path):
    from snntorch.import_nir import import_from_nir

    net = _our_net(models=("lif", "lif"), reset="zero")
    path = snir.save(net, tmp_path / "zero.nir")
    imported = import_from_nir(nir.read(path))
    x = _spikes(10)
    ours = net(x).spikes
    assert ours.sum() > 0
    assert torch.equal(_run_snntorch(imported, x), ours)


def test_quantized_export_has_integer_weights_and_loads_to_the_same_integers(tmp_path):
    net = _our_net(models=("lif", "lif"))
    params = {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 3}
    qnet = spiker.quantize(net, params)
    path = snir.save(net, tmp_path / "q.nir", optim_params=params)
    graph = nir.read(path)
    w = graph.nodes["linear_0"].weight
    assert np.array_equal(w, np.round(w)) and np.array_equal(w, qnet.layers[0].weights)
    assert graph.nodes["lif_0"].v_threshold[0] == qnet.layers[0].threshold
    again = spiker.quantize(snir.load(path), params)
    for a, b in zip(again.layers, qnet.layers):
        assert np.array_equal(a.weights, b.weights) and a.threshold == b.threshold
    assert snir.to_nir(qnet).nodes.keys() == graph.nodes.keys()


def _norse_graph(tau=8e-3, r=1.0, n_in=5, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 8, (n_out, n_in))
    lif = nir.LIF(tau=np.full(n_out, tau), r=np.full(n_out, r), v_leak=np.zeros(n_out),
                  v_threshold=np.ones(n_out), v_reset=np.zeros(n_out))
    return nir.NIRGraph.from_list(nir.Linear(weight=weight), lif), weight


def test_continuous_time_lif_needs_a_time_step():
    graph, _ = _norse_graph()
    with pytest.raises(SpecError, match="nir node 'lif'.*needs a time step"):
        snir.load(graph)


def test_continuous_time_lif_forward_euler_discretisation():
    dt, tau, r = 1e-3, 8e-3, 2.0
    graph, weight = _norse_graph(tau=tau, r=r)
    net = snir.load(graph, dt=dt)
    assert net.spec.layers[0].beta == 0.875
    x = _spikes(5, p=0.5)
    # NIR's LIF, forward Euler: v += dt/tau * (-v + r*I); spike if v > thr; then v = v_reset = 0
    v = np.zeros((x.shape[1], 4))
    expected = []
    for t in range(x.shape[0]):
        v = v + dt / tau * (-v + r * (x[t].numpy() @ weight.T))
        s = v > 1.0
        expected.append(s)
        v = np.where(s, 0.0, v)
    assert torch.equal(net(x).spikes, torch.from_numpy(np.stack(expected)).float())


def test_unrealisable_leak_snaps_with_warning_or_is_rejected_in_strict_mode():
    graph, _ = _norse_graph(tau=10e-3)  # beta = 0.9
    with pytest.warns(UserWarning, match="snapped to 0.875"):
        assert snir.load(graph, dt=1e-3).spec.layers[0].beta == 0.875
    with pytest.raises(SpecError, match="nir node 'lif'.*not realisable"):
        snir.load(graph, dt=1e-3, strict=True)


def test_unsupported_nodes_are_named():
    graph = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((3, 2))), nir.Scale(scale=np.ones(3)))
    with pytest.raises(SpecError, match="nir node 'scale'.*Scale.*supported: Input, Affine/Linear, LIF"):
        snir.load(graph, dt=1e-4)
    affine = nir.Affine(weight=np.ones((3, 2)), bias=np.ones(3))
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    with pytest.raises(SpecError, match="nir node 'affine'.*bias"):
        snir.load(nir.NIRGraph.from_list(affine, lif), dt=1e-4)
    leaky = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.ones(3), v_threshold=np.ones(3))
    with pytest.raises(SpecError, match="v_leak"):
        snir.load(nir.NIRGraph.from_list(nir.Linear(weight=np.ones((3, 2))), leaky), dt=1e-4)


def test_branching_graph_is_refused():
    w = nir.Linear(weight=np.ones((2, 2)))
    lif = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "w": w, "lif": lif,
                                "output": nir.Output(np.array([2]))},
                         edges=[("input", "w"), ("w", "lif"), ("lif", "output"), ("lif", "w")])
    with pytest.raises(SpecError, match="nir node 'lif'.*2 successors"):
        snir.load(graph, dt=1e-4)


def test_spikingnet_load_reads_nir_files(tmp_path):
    net = _our_net(models=("lif",))
    path = snir.save(net, tmp_path / "m.nir")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = spiker.SpikingNet.load(path)
    assert back.spec == net.spec


# -- in the flow: model.nir instead of training -------------------------------------------------

def _tiny_npz(path):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.uniform(0.0, 0.3, size=(60, 8))
    for c in range(3):
        x[y == c, c * 2:c * 2 + 3] += 0.7
    np.savez(path, x=np.clip(x, 0, 1).astype(np.float32), y=y.astype(np.int64))


def _nir_flow(tmp_path, **sections):
    """A snnTorch-built 8-6-3 net as a NIR file and a flow spec that uses it instead of training."""
    import yaml

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 6, bias=False), snn.Leaky(beta=0.75, reset_mechanism="subtract"),
                              torch.nn.Linear(6, 3, bias=False), snn.Leaky(beta=0.75, reset_mechanism="zero"))
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
    nir.write(tmp_path / "net.nir", snir.from_snntorch(net))
    _tiny_npz(tmp_path / "tiny.npz")
    spec = {"name": "nir-tiny", "dataset": {"name": "tiny.npz", "batch_size": 32, "test_fraction": 0.3},
            "model": {"nir": "net.nir", "n_cycles": 6},
            "select": {"optim_params": {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 4}},
            "hdl": {"resources": False}, "simulate": {"samples": 8}, **sections}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "spec.yaml"


def test_flow_spec_model_nir_skips_training(tmp_path):
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(_nir_flow(tmp_path))
    assert spec.net_spec.sizes == [8, 6, 3] and spec.net_spec.n_cycles == 6
    assert [layer.reset_mechanism for layer in spec.net_spec.layers] == ["subtract", "zero"]
    out = tmp_path / "out"
    snn_net, history = stages.train(spec, out, progress=False)
    assert history.epoch == [] and not (out / "training.png").exists()
    assert torch.equal(snn_net.fcs[0].weight, snir.load(tmp_path / "net.nir").fcs[0].weight)
    assert spiker.SpikingNet.load(out / "model.pt").spec == spec.net_spec


def test_flow_spec_model_nir_runs_the_optimizer(tmp_path):
    from spiker.flow import load_flow_spec, stages

    ranges = {"weights_bw": {"min": 6, "max": 6}, "neurons_bw": {"min": 10, "max": 10}, "fp_dec": {"min": 4, "max": 4}}
    spec = load_flow_spec(_nir_flow(tmp_path, select={"max_accuracy_drop": 1.0}, optimize=ranges))
    params = stages.select(spec, tmp_path / "out", progress=False)
    assert dict(params) == {"weights_bw": 6, "neurons_bw": 10, "fp_dec": 4}


def test_flow_spec_model_errors(tmp_path):
    import yaml

    from spiker.flow import load_flow_spec, parse_flow_spec

    path = _nir_flow(tmp_path)
    doc = yaml.safe_load(path.read_text())
    (tmp_path / "both.yaml").write_text(yaml.safe_dump({**doc, "net": {"n_cycles": 6, "n_inputs": 8}}))
    with pytest.raises(SpecError, match="net: give either net"):
        load_flow_spec(tmp_path / "both.yaml")
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump({**doc, "model": {"nir": "nope.nir"}}))
    with pytest.raises(SpecError, match="model.nir: file not found"):
        load_flow_spec(tmp_path / "missing.yaml")
    net = load_flow_spec(path).net
    with pytest.raises(SpecError, match="model: give exactly one"):
        parse_flow_spec({**doc, "net": net, "model": {"nir": "a.nir", "artifact": "0" * 64}})
    from spiker_gateway.validate import Limits, check_limits

    with pytest.raises(SpecError, match="model.nir: the gateway reads no client paths"):
        check_limits(parse_flow_spec({**doc, "net": net, "dataset": {"name": "digits"}}), Limits())


@pytest.mark.slow
@pytest.mark.rtl
def test_spiker_run_with_a_nir_file_has_no_mismatches_in_ghdl(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    spec = _nir_flow(tmp_path)
    out, store = tmp_path / "out", tmp_path / "store"
    env = {**os.environ, "SPIKER_S3_ENDPOINT": ""}
    cmd = [sys.executable, "-m", "spiker_app", "-q", "run", str(spec), "--store", str(store), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["train"]["state"] == "skipped"
    assert report["mismatches"] == 0 and report["samples"] == 8
    assert (out / "vhdl" / "files.txt").is_file()


def test_continuous_time_cubalif_and_if_discretisation():
    dt, tau_syn, tau_mem, r, w_in = 1e-3, 2e-3, 4e-3, 1.5, 2.0
    rng = np.random.default_rng(3)
    w0, w1 = rng.normal(0, 4, (4, 5)), rng.normal(0, 4, (3, 4))
    cuba = nir.CubaLIF(tau_syn=np.full(4, tau_syn), tau_mem=np.full(4, tau_mem), r=np.full(4, r),
                       v_leak=np.zeros(4), v_threshold=np.ones(4), w_in=np.full(4, w_in))
    integrate = nir.IF(r=np.full(3, 400.0), v_threshold=np.full(3, 1.5))
    graph = nir.NIRGraph.from_list(nir.Linear(weight=w0), cuba, nir.Linear(weight=w1), integrate)
    with pytest.raises(SpecError, match="nir node 'cubalif'.*needs a time step"):
        snir.load(graph)
    net = snir.load(graph, dt=dt)
    assert [(layer.neuron_model, layer.alpha, layer.beta) for layer in net.spec.layers] == [
        ("syn", 0.5, 0.75), ("if", None, 1.0)]
    x = _spikes(5, p=0.5)
    # documented Euler step: current first (gain w_in dt/tau_syn), then membrane (gain r dt/tau_mem)
    i = v = np.zeros((x.shape[1], 4))
    u = np.zeros((x.shape[1], 3))
    fired, out = np.zeros_like(v, bool), []
    for t in range(x.shape[0]):
        i = i + dt / tau_syn * (-i + w_in * (x[t].numpy() @ w0.T))
        v = np.where(fired, 0.0, v + dt / tau_mem * (-v + r * i))  # snnTorch Synaptic: zero reset, delayed
        fired = v > 1.0
        u = u + 400.0 * dt * (fired.astype(float) @ w1.T)
        s = u > 1.5
        out.append(s)
        u = np.where(s, 0.0, u)
    got = net(x).spikes
    assert got.sum() > 0
    assert torch.equal(got, torch.from_numpy(np.stack(out)).float())


def test_discrete_time_if_graph_in_steps_and_recurrent_subgraphs_refused():
    weight = np.array([[2.0, -1.0], [1.0, 1.0]])
    graph = nir.NIRGraph.from_list(nir.Linear(weight=weight), nir.IF(r=np.ones(2), v_threshold=np.full(2, 1.5)))
    with pytest.raises(SpecError, match="nir node 'if'.*dt=1 for graphs in steps"):
        snir.load(graph)
    net = snir.load(graph, dt=1)  # Sinabs' IAF / graphs in steps: v += W s
    assert net.spec.layers[0].neuron_model == "if" and torch.equal(net.fcs[0].weight, torch.tensor(weight).float())
    x = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    assert net(x).spikes[:, 0].tolist() == [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    rec = snir.from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False),
                                                  snn.RLeaky(beta=0.5, linear_features=2)))
    with pytest.raises(SpecError, match="is a subgraph \\(recurrent"):
        snir.load(rec)
