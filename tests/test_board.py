"""The board driver: byte format, and the UART board top in GHDL fed the driver's own bytes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hdl_nets import layer

from spiker.board import BOARD_TOP, decode, encode, result_bytes, simulate_uart
from spiker.errors import DataError
from spiker.golden import QuantizedNet
from spiker.hdl import VhdlGenerator
from spiker.net.spec import parse_net_dict


def _design(n_in: int = 11):
    spec = parse_net_dict({"n_cycles": 5, "n_inputs": n_in, "layer_0": layer("lif", 4),
                           "layer_1": layer("lif", 3, "none")})
    rng = np.random.default_rng(2)
    weights = [rng.normal(0.4, 1.0, (4, n_in)), rng.normal(0.5, 1.0, (3, 4))]
    q = QuantizedNet.from_arrays(spec, weights, [1.0, 1.0], {"weights_bw": 5, "neurons_bw": 7, "fp_dec": 3})
    return VhdlGenerator(q).generate()


def test_encode_decode_round_trip():
    design = _design()
    x = np.zeros((5, 2, 11), dtype=np.uint8)
    x[0, 0, 0] = x[4, 1, 10] = x[2, 1, 8] = 1
    data = encode(x, design)
    assert len(data) == 2 * 5 * 2  # 2 samples x 5 steps x ceil(11 / 8) bytes
    assert data[0] == 1 and data[10 + 2 * 2 + 1] == 1 and data[10 + 4 * 2 + 1] == 4
    fmt = design.geometry.format()  # the result word's layout (pinned in test_stream_format.py)
    golden = design.quantized.run(x)
    answer = b"".join(fmt.encode_result(c, p).to_bytes(result_bytes(design), "little")
                      for c, p in zip(golden.counts, golden.predictions))
    counts, preds = decode(answer, design)
    assert (counts == golden.counts).all() and (preds == golden.predictions).all()
    with pytest.raises(DataError, match="exactly n_cycles=5 steps, got 4"):
        encode(x[:4], design)
    with pytest.raises(DataError, match="whole results"):
        decode(answer[:-1], design)
    with pytest.raises(DataError, match=r"\[T, B, 11\]"):
        encode(np.zeros((5, 2, 3)), design)


@pytest.mark.slow
@pytest.mark.rtl
def test_uart_top_in_ghdl_matches_golden(tmp_path):
    if shutil.which("ghdl") is None:
        pytest.skip("GHDL not installed")
    design = _design()
    x = (np.random.default_rng(5).random((5, 4, 11)) < 0.4).astype(np.uint8)
    x[:, 2] = 0  # a silent sample
    rep = simulate_uart(design, x, clks_per_bit=4, keep=tmp_path)
    assert rep.samples == 4 and rep.bytes_received == 4 * result_bytes(design)
    assert rep.mismatches == 0, (rep.counts, design.quantized.run(x).counts)
    assert BOARD_TOP in (tmp_path / "uart_board_top.vhd").read_text()
