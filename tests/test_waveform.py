"""Waveforms: design.simulate(wave=...) by suffix (VCD/GHW), relative paths, the kit's VCD, the CLI option."""

import shutil
import subprocess

import pytest
from hdl_nets import random_spikes
from test_kit import small_net

from spiker.errors import DataError
from spiker.hdl import VhdlGenerator
from spiker.hdl.sim import wave_option

pytestmark = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")

AXI = ("s_axis_tvalid", "s_axis_tready", "s_axis_tdata", "s_axis_tlast",
       "m_axis_tvalid", "m_axis_tready", "m_axis_tdata", "m_axis_tlast")


def test_the_suffix_chooses_the_format():
    assert wave_option("a/b.vcd") == "--vcd=a/b.vcd"
    assert wave_option("b.GHW") == "--wave=b.GHW"
    with pytest.raises(DataError, match=r"x\.fst: name it \.vcd .* or \.ghw"):
        wave_option("x.fst")


def test_a_bad_wave_is_refused_before_ghdl_runs(tmp_path):
    design = VhdlGenerator(small_net()).generate()
    x = random_spikes(0, steps=4, batch=2, n=20)
    with pytest.raises(DataError, match="name it .vcd"):
        design.simulate(x, wave=tmp_path / "w.txt")
    with pytest.raises(DataError, match="wave_sample 2 is not one of the 2 samples"):
        design.simulate(x, wave=tmp_path / "w.vcd", wave_sample=2)


def _signals(path):
    from vcdvcd import VCDVCD

    vcd = VCDVCD(str(path))
    return vcd, {_base(name) for name in vcd.signals}


def _base(name):
    """A VCD signal's own name without its scope and bit range (``tb.dut.s_axis_tdata[19:0]``)."""
    return name.split(".")[-1].split("[")[0]


@pytest.mark.slow
def test_relative_vcd_ghw_and_keep_paths(tmp_path, monkeypatch):
    design = VhdlGenerator(small_net()).generate()
    x = random_spikes(2, steps=10, batch=3, n=20, p=0.3)
    monkeypatch.chdir(tmp_path)
    report = design.simulate(x, wave="waves/one.vcd", wave_sample=1, keep="work")
    assert report.mismatches == 0
    vcd, names = _signals(tmp_path / "waves" / "one.vcd")
    assert set(AXI) <= names, sorted(names)[:40]
    tlast = next(s for s in vcd.signals if s.endswith("dut.s_axis_tlast"))
    assert any(v == "1" for _, v in vcd[tlast].tv)  # the sample's last step went in
    assert (tmp_path / "work" / "files.txt").is_file()  # relative keep= holds GHDL's folder
    design.simulate(x[:, :1], wave="one.ghw")
    assert (tmp_path / "one.ghw").read_bytes()[:8] == b"GHDLwave"


@pytest.mark.slow
def test_the_kit_dumps_a_vcd_of_the_axi_top(tmp_path):
    design = VhdlGenerator(small_net()).generate()
    design.export_testbench(tmp_path, random_spikes(2, steps=10, batch=1, n=20, p=0.3))
    proc = subprocess.run(["sh", "run_ghdl.sh", "--vcd=wave.vcd"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
    vcd, names = _signals(tmp_path / "wave.vcd")
    top = {_base(s) for s in vcd.signals if s.count(".") == 1}  # the testbench's own signals
    assert set(AXI) <= top, sorted(top)


def test_cli_simulate_takes_a_wave():
    from spiker.cli import build_parser

    args = build_parser().parse_args(["simulate", "x.yaml", "--wave", "w.vcd", "--wave-sample", "3"])
    assert (args.wave, args.wave_sample) == ("w.vcd", 3)
