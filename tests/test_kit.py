"""The verification kit (spiker.hdl.kit): testbench, golden vectors, run script; GHDL runs are slow."""

import copy
import os
import shutil
import subprocess

import numpy as np
import pytest
from hdl_nets import layer, random_spikes

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.hdl.kit import render_testbench
from spiker.hdl.stream_format import StreamFormat
from spiker.net.spec import parse_net_dict

ghdl = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")


def small_net() -> QuantizedNet:
    """20 inputs, 4 classes, 10 steps: a 24-bit result word (3 beats at 8 bits, 2 at 16)."""
    spec = parse_net_dict({"n_cycles": 10, "n_inputs": 20, "layer_0": layer("lif", 6),
                           "layer_1": layer("lif", 4, "none")})
    rng = np.random.default_rng(3)
    return QuantizedNet.from_arrays(spec, [rng.normal(0.0, 1.0, (6, 20)), rng.normal(0.0, 1.5, (4, 6))],
                                    [1.0, 1.0], {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})


@pytest.fixture(scope="module")
def net():
    q = small_net()
    x = random_spikes(2, steps=10, batch=6, n=20, p=0.3)
    golden = q.run(x)
    assert golden.counts.sum() > 0 and len(set(golden.predictions.tolist())) > 1  # results worth checking
    return q, VhdlGenerator(q).generate(), x, golden


def read_expected(path):
    lines = path.read_text().split("\n")
    n = int(lines[0])
    rows = [list(map(int, ln.split())) for ln in lines[1:n + 1]]
    return n, rows


def test_export_writes_the_kit_with_golden_vectors(net, tmp_path):
    q, design, x, golden = net
    kit = design.export_testbench(tmp_path, x, n_samples=5)
    assert kit.samples == 5 and kit.top == "spiker_top"
    names = (tmp_path / "files.txt").read_text().split()
    assert names == kit.files and names[-1] == "spiker_axis_tb.vhd" and "spiker_tb.vhd" not in names
    assert names[:-1] == design.design_files  # analysis order: library, package, core, top
    assert all((tmp_path / name).is_file() for name in names)
    for name in ("run_ghdl.sh", "spiker_stream.h", "README.txt", "stimulus.txt", "expected.txt"):
        assert (tmp_path / name).is_file(), name
    assert os.access(tmp_path / "run_ghdl.sh", os.X_OK)
    n, rows = read_expected(tmp_path / "expected.txt")
    assert n == 5
    for k, row in enumerate(rows):
        assert row[0] == k and row[1] == golden.predictions[k] and row[2:] == golden.counts[k].tolist()
    # the stimulus decodes back to the spikes: one N_INPUTS-bit beat a step, MSB first
    lines = (tmp_path / "stimulus.txt").read_text().split()
    assert int(lines[0]) == 5 and int(lines[1]) == 10
    beats = lines[2:12]
    assert [[int(b[-1 - i]) for i in range(20)] for b in beats] == x[:, 0].tolist()


def test_stream_top_kit_and_testbench_text(net, tmp_path):
    _, design, x, _ = net
    kit = design.export_testbench(tmp_path, x, n_samples=2, stream_width=16)
    assert kit.top == "spiker_stream_top"
    names = (tmp_path / "files.txt").read_text().split()
    assert names.index("stream_in.vhd") < names.index("spiker_stream_top.vhd") < names.index("spiker_axis_tb.vhd")
    assert names.index("spiker_top.vhd") < names.index("spiker_stream_top.vhd")
    lines = (tmp_path / "stimulus.txt").read_text().split()
    assert int(lines[1]) == 20 and all(len(b) == 16 for b in lines[2:22])  # 2 beats a step
    tb = render_testbench(design, 16)
    assert "entity work.spiker_stream_top" in tb and "m_axis_tkeep => m_axis_tkeep" in tb
    assert 'LAST_KEEP   : std_logic_vector(KEEP_BITS - 1 downto 0) := "01"' in tb
    assert "OUT_BEATS   : positive := 2" in tb and "std.env.finish(1)" in tb
    assert "entity work.spiker_top" in render_testbench(design)
    assert "CLASS_LSB   : natural := 16" in tb  # the format's positions: class above 4 x 4 count bits
    assert StreamFormat.of(design.geometry).class_lsb == 16


def test_the_watchdog_fits_vhdl_integers(net):
    """Wide nets or many samples make a watchdog above 2**31 - 1, which no VHDL integer holds."""
    _, design, _, _ = net
    tb = render_testbench(design, max_cycles=50 * 2**31)
    assert f"MAX_CYCLES : natural := {2**31 - 2};" in tb


def test_bad_export_arguments(net, tmp_path):
    _, design, x, _ = net
    with pytest.raises(ValueError, match="ready_pct"):
        design.export_testbench(tmp_path, x, ready_pct=0)
    with pytest.raises(ValueError, match="stream_width"):
        design.export_testbench(tmp_path, x, stream_width=12)
    with pytest.raises(ValueError, match="seed"):
        design.export_testbench(tmp_path, x, seed=0)


def test_flow_spec_and_cli_take_a_testbench():
    from test_flow_stages import TINY

    from spiker.cli import build_parser
    from spiker.errors import SpecError
    from spiker.flow import parse_flow_spec

    raw = copy.deepcopy(TINY)
    raw["hdl"]["testbench"] = 4
    assert parse_flow_spec(raw).hdl.testbench == 4
    assert "testbench" not in parse_flow_spec(copy.deepcopy(TINY)).to_dict()["hdl"]  # cache keys unchanged
    raw["hdl"]["testbench"] = 0
    with pytest.raises(SpecError, match="hdl.testbench"):
        parse_flow_spec(raw)
    assert build_parser().parse_args(["hdl", "x.yaml", "--testbench", "7"]).testbench == 7


def test_hdl_stage_writes_the_kit(tmp_path):
    from test_flow_stages import TINY

    from spiker.flow import parse_flow_spec, stages

    stages.hdl(parse_flow_spec(copy.deepcopy(TINY)), tmp_path, progress=False, testbench=3)
    n, rows = read_expected(tmp_path / "testbench" / "expected.txt")
    assert n == 3 and len(rows) == 3
    assert (tmp_path / "testbench" / "run_ghdl.sh").is_file()


def _run(folder, *args, env_extra=None):
    """The kit's own script with nothing of this project on the environment."""
    env = {"PATH": "/usr/bin:/bin", **(env_extra or {})}
    return subprocess.run(["sh", "run_ghdl.sh", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
@ghdl
def test_kit_passes_and_a_corrupted_expected_file_fails(net, tmp_path):
    _, design, x, golden = net
    folder = tmp_path / "kit"
    design.export_testbench(folder, x, seed=3, valid_pct=50, ready_pct=30)
    proc = _run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS spiker_axis_tb: 6 samples, 0 mismatches" in proc.stdout
    # one count of sample 4 off by one: FAIL naming the sample and class, non-zero exit
    lines = (folder / "expected.txt").read_text().split("\n")
    row = lines[5].split()
    row[2 + 1] = str(int(row[2 + 1]) + 1)
    lines[5] = " ".join(row)
    (folder / "expected.txt").write_text("\n".join(lines))
    proc = _run(folder)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"sample 4 class 1: count expected {golden.counts[4, 1] + 1}, got {golden.counts[4, 1]}" in out
    assert "FAIL spiker_axis_tb: 1 of 6 samples mismatch" in out


@pytest.mark.slow
@ghdl
def test_stream_top_kit_passes_under_back_pressure(net, tmp_path):
    _, design, x, _ = net
    design.export_testbench(tmp_path, x, stream_width=8)  # 3 input beats a step, 3 output beats
    proc = _run(tmp_path, env_extra={"SEED": "11", "READY_PCT": "15"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS spiker_axis_tb: 6 samples, 0 mismatches (seed 11, valid 70%, ready 15%" in proc.stdout


def test_ip_wrapper_has_the_names_the_ip_integrator_infers(net, tmp_path):
    from spiker.hdl.kit import render_ip_top

    _, design, x, _ = net
    text = render_ip_top(design)
    for port in ("aclk          : in  std_logic", "aresetn       : in  std_logic",
                 "s_axis_tdata  : in  std_logic_vector(24 - 1 downto 0)",  # 20 inputs padded to bytes
                 "m_axis_tdata  : out std_logic_vector(24 - 1 downto 0)", "m_axis_tkeep  : out"):
        assert port in text, port
    assert "rst <= not aresetn;" in text and "entity work.spiker_top" in text
    assert "entity work.spiker_stream_top" in render_ip_top(design, 8)
    kit = design.export_testbench(tmp_path, x, n_samples=2, ip=True)
    assert kit.top == "spiker_axis_ip" and kit.files[-2:] == ["spiker_axis_ip.vhd", "spiker_axis_tb.vhd"]
    assert all(len(b) == 24 for b in (tmp_path / "stimulus.txt").read_text().split()[2:12])
    assert "aresetn => rst_n" in (tmp_path / "spiker_axis_tb.vhd").read_text()


@pytest.mark.slow
@ghdl
def test_ip_wrapper_kit_passes(net, tmp_path):
    _, design, x, _ = net
    design.export_testbench(tmp_path, x, stream_width=16, ip=True)
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS spiker_axis_tb: 6 samples, 0 mismatches" in proc.stdout


@pytest.mark.slow
@ghdl
def test_a_broken_design_fails_the_kit(net, tmp_path):
    """Expected values come from the golden model, so an RTL that differs from it fails."""
    q, design, x, golden = net
    pkg = design.files["spiker_net_pkg.vhd"]
    thr = int(q.layers[1].threshold)
    broken = design.with_file("spiker_net_pkg.vhd", pkg.replace(f"L1_THRESHOLD : natural := {thr};",
                                                                f"L1_THRESHOLD : natural := {thr + 3};"))
    assert broken.files["spiker_net_pkg.vhd"] != pkg
    assert (broken.quantized.run(x).counts == golden.counts).all()  # the golden model is unchanged
    broken.export_testbench(tmp_path, x)
    proc = _run(tmp_path)
    assert proc.returncode != 0
    assert "FAIL spiker_axis_tb:" in proc.stdout and "count expected" in proc.stdout + proc.stderr
