"""The fixed-width AXI4-Stream top in GHDL (cocotb + cocotbext-axi) against the golden model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.hdl.interface import STREAM_TOP
from spiker.hdl.stream_top import beats_per_step, check_width, encode_sample, stream_files
from spiker.net.spec import parse_net_dict

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from hdl_nets import layer  # noqa: E402
from rtl_run import run_cocotb  # noqa: E402


def _net(n_in: int, seed: int) -> QuantizedNet:
    spec = parse_net_dict({"n_cycles": 6, "n_inputs": n_in, "layer_0": layer("lif", 5),
                           "layer_1": layer("lif", 3, "none")})
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.4, 1.0, (5, n_in)), rng.normal(0.5, 1.0, (3, 5))]
    return QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})


def test_encode_sample_layout():
    x = np.zeros((2, 11), dtype=np.uint8)
    x[0, 0] = x[0, 9] = x[1, 10] = 1
    assert beats_per_step(11, 8) == 2 and beats_per_step(11, 16) == 1 and beats_per_step(64, 64) == 1
    assert encode_sample(x, 8) == bytes([1, 2, 0, 4])
    assert encode_sample(x, 32) == bytes([1, 2, 0, 0, 0, 4, 0, 0])
    with pytest.raises(ValueError, match="stream_width must be one of 8, 16, 32, 64"):
        check_width(12)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("width,n_in,pause_in,pause_out", [(8, 19, 0.3, 0.5), (16, 16, 0.0, 0.7),
                                                          (32, 9, 0.6, 0.2), (64, 70, 0.4, 0.4)])
def test_stream_top(tmp_path, width, n_in, pause_in, pause_out):
    pytest.importorskip("cocotbext.axi")
    q = _net(n_in, seed=width)
    design = VhdlGenerator(q).generate()
    rng = np.random.default_rng(width + n_in)
    x = (rng.random((6, 5, n_in)) < 0.4).astype(np.uint8)
    x[:, 1] = 0  # a sample without any input spike
    golden = q.run(x)
    fmt = design.geometry.format(width)
    expected = [list(fmt.encode_result(c, p).to_bytes(fmt.result_bytes, "little"))
                for c, p in zip(golden.counts, golden.predictions)]
    vec = {"samples": [list(encode_sample(x[:, b], width)) for b in range(x.shape[1])], "expected": expected,
           "seed": width, "pause_in": pause_in, "pause_out": pause_out,
           "timeout_us": 50 + x.shape[1] * x.shape[0] * (n_in + 20) * 4 * 10 // 1000}
    files = {name: design.files[name] for name in design.design_files}
    files.update(stream_files(design, width)[0])
    src = tmp_path / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    run_cocotb(tmp_path, STREAM_TOP, "cocotb_stream", vec, [src / n for n in files], library=False)
