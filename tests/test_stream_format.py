"""The stream format (spiker.hdl.stream_format): beat layout, encode/decode, the C header, its users."""

import shutil
import subprocess

import numpy as np
import pytest
from hdl_nets import random_net, random_spikes

from spiker.hdl import VhdlGenerator
from spiker.hdl.interface import geometry
from spiker.hdl.stream_format import StreamFormat, check_width, result_bits
from spiker.hdl.stream_top import beats_per_step, decode_result, encode_sample

FMT = StreamFormat(n_inputs=20, n_classes=4, count_bits=4, class_bits=2)


def test_result_word_layout_counts_then_class_padded_to_bytes():
    assert FMT.result_bits == 24 and FMT.result_bytes == 3
    assert [FMT.count_lsb(c) for c in range(4)] == [0, 4, 8, 12] and FMT.class_lsb == 16
    word = FMT.encode_result([1, 2, 15, 0], 2)
    assert word == 1 | 2 << 4 | 15 << 8 | 0 << 12 | 2 << 16
    assert FMT.decode_result(word) == ([1, 2, 15, 0], 2)
    assert FMT.decode_bytes(word.to_bytes(3, "little")) == ([1, 2, 15, 0], 2)
    with pytest.raises(ValueError, match="does not fit 4 bits"):
        FMT.encode_result([16, 0, 0, 0], 0)
    with pytest.raises(ValueError, match="class 4"):
        FMT.encode_result([0, 0, 0, 0], 4)


def test_random_results_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n_cls, cb = int(rng.integers(1, 12)), int(rng.integers(1, 9))
        fmt = StreamFormat(5, n_cls, cb, max(1, (n_cls - 1).bit_length()))
        counts = rng.integers(0, 1 << cb, n_cls).tolist()
        cls = int(rng.integers(0, n_cls))
        assert fmt.decode_bytes(fmt.encode_result(counts, cls).to_bytes(fmt.result_bytes, "little")) == (counts, cls)
        assert fmt.result_bits % 8 == 0 and fmt.result_bits >= n_cls * cb + fmt.class_bits


def test_geometry_and_the_generated_package_use_the_format():
    q = random_net(5)
    geo = geometry(q)
    fmt = StreamFormat.of(geo)
    assert geo.tdata_bits == fmt.result_bits == result_bits(geo.n_classes, geo.count_bits, geo.class_bits)
    pkg = VhdlGenerator(q).generate().files["spiker_net_pkg.vhd"]
    assert f"TDATA_BITS : positive := {fmt.result_bits};" in pkg


def test_input_beats_of_both_tops():
    x = random_spikes(1, steps=3, batch=1, n=20)[:, 0]
    top = FMT.encode_beats(x)  # spiker_top: one 20-bit beat a step
    assert len(top) == 3 and [last for _, last in top] == [0, 0, 1]
    assert all(((data >> i) & 1) == x[t, i] for t, (data, _) in enumerate(top) for i in range(20))
    for w in (8, 16, 32, 64):
        fmt = StreamFormat(20, 4, 4, 2, w)
        beats = fmt.encode_beats(x)
        per = -(-20 // w)
        assert fmt.beats_per_step == per == beats_per_step(20, w) and len(beats) == 3 * per
        assert [last for _, last in beats] == [0] * (3 * per - 1) + [1]
        for t in range(3):  # input j*W + b in bit b of the step's beat j
            for i in range(20):
                assert (beats[t * per + i // w][0] >> (i % w)) & 1 == x[t, i]
        # the byte stream is the beats' little-endian bytes
        raw = b"".join(d.to_bytes(w // 8, "little") for d, _ in beats)
        assert fmt.encode_bytes(x) == raw == encode_sample(x, w)


def test_output_beats_and_tkeep():
    assert (StreamFormat(20, 4, 4, 2, 8).out_beats, StreamFormat(20, 4, 4, 2, 8).last_keep) == (3, 0b1)
    assert (StreamFormat(20, 4, 4, 2, 16).out_beats, StreamFormat(20, 4, 4, 2, 16).last_keep) == (2, 0b01)
    assert (StreamFormat(20, 4, 4, 2, 32).out_beats, StreamFormat(20, 4, 4, 2, 32).last_keep) == (1, 0b0111)
    assert FMT.out_beats == 1 and FMT.m_tdata_bits == 24 and FMT.s_tdata_bits == 20
    assert FMT.s_tdata_byte_bits == 24 and StreamFormat(20, 4, 4, 2, 16).s_tdata_byte_bits == 16


def test_bad_widths_and_samples_are_refused():
    with pytest.raises(ValueError, match="stream_width must be one of 8, 16, 32, 64"):
        check_width(12)
    with pytest.raises(ValueError, match=r"\[T, 20\]"):
        FMT.encode_beats(np.zeros((3, 19)))
    with pytest.raises(ValueError, match="encode_beats"):
        FMT.encode_bytes(np.zeros((3, 20)))


def test_board_and_stream_top_decode_with_the_format():
    from spiker import board

    q = random_net(5)
    design = VhdlGenerator(q).generate()
    fmt = StreamFormat.of(design.geometry)
    word = fmt.encode_result([1] * fmt.n_classes, fmt.n_classes - 1)
    data = word.to_bytes(fmt.result_bytes, "little")
    assert decode_result(data, design.geometry) == fmt.decode_result(word)
    counts, preds = board.decode(data * 2, design)
    assert counts.tolist() == [[1] * fmt.n_classes] * 2 and preds.tolist() == [fmt.n_classes - 1] * 2
    assert board.result_bytes(design) == fmt.result_bytes


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_header_compiles_and_decodes_like_python(tmp_path):
    fmt = StreamFormat(20, 10, 5, 4, 16)
    (tmp_path / "spiker_stream.h").write_text(fmt.c_header())
    counts, cls = [3, 0, 31, 7, 1, 2, 30, 0, 9, 17], 6
    data = fmt.encode_result(counts, cls).to_bytes(fmt.result_bytes, "little")
    (tmp_path / "t.c").write_text(
        '#include <stdio.h>\n#include "spiker_stream.h"\nint main(void) {\n'
        f"  const uint8_t r[] = {{{', '.join(map(str, data))}}};\n"
        "  for (unsigned c = 0; c < SPIKER_N_CLASSES; c++) printf(\"%u \", spiker_count(r, c));\n"
        "  printf(\"%u %u %u %u %u\\n\", spiker_class(r), SPIKER_RESULT_BYTES, SPIKER_BEATS_PER_STEP,"
        " SPIKER_OUT_BEATS, SPIKER_LAST_TKEEP);\n  return 0;\n}\n")
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")],
                   check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "t")], check=True, capture_output=True, text=True).stdout.split()
    assert list(map(int, out)) == [*counts, cls, fmt.result_bytes, fmt.beats_per_step, fmt.out_beats,
                                   fmt.last_keep]
