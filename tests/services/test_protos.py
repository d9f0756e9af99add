"""The committed stubs in spiker_api/v1 match the protos, and the contracts follow the style guide."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    """Regenerate into a temp dir: every file must equal the committed one (run scripts/gen_protos.py)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "spiker_api" / "v1").iterdir()}
    committed = {p.name: p.read_bytes() for p in (ROOT / "spiker_api" / "v1").iterdir()
                 if p.is_file() and p.suffix in (".py", ".pyi")}
    assert sorted(fresh) == sorted(committed), "stub files differ: run python scripts/gen_protos.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: run python scripts/gen_protos.py"


def test_protos_follow_style_guide() -> None:
    """Services end in Service, messages are CamelCase, fields lower_snake_case, enums prefixed."""
    for proto in sorted((ROOT / "proto" / "spiker" / "v1").glob("*.proto")):
        text = proto.read_text()
        assert "package spiker.v1;" in text, proto.name
        for name in re.findall(r"^service (\w+)", text, re.MULTILINE):
            assert name.endswith("Service"), name
        for name in re.findall(r"^\s*message (\w+)", text, re.MULTILINE):
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name
        for field in re.findall(r"^\s+(?:optional |repeated )?[\w.<>, ]+ (\w+) = \d+;", text, re.MULTILINE):
            if not field.isupper():
                assert re.fullmatch(r"[a-z][a-z0-9_]*", field), f"{proto.name}: {field}"
        for enum, body in re.findall(r"^enum (\w+) \{(.*?)\}", text, re.MULTILINE | re.DOTALL):
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum).upper() + "_"
            values = re.findall(r"^\s+(\w+) = (\d+);", body, re.MULTILINE)
            assert values[0] == (prefix + "UNSPECIFIED", "0"), enum
            assert all(v.startswith(prefix) for v, _ in values), enum


def test_field_maps_come_from_the_request_descriptors() -> None:
    """Library keys name a request's field by the proto's own names, plus the few renamed ones."""
    from spiker_api.convert import field_map
    from spiker_api.errors import remap_field
    from spiker_api.v1 import hdlgen_pb2, optimizer_pb2, trainer_pb2

    train = field_map(trainer_pb2.TrainRequest)
    assert remap_field("net.layer_1.beta", train) == "net_dict.layers[1].beta"
    assert remap_field("train.epochs", train) == "config.epochs"
    assert remap_field("dataset.batch_size", train) == "dataset.batch_size"
    sweep = field_map(optimizer_pb2.SweepSettings, "settings.")
    assert remap_field("optim_config.weights_bw", sweep) == "settings.ranges.weights_bw"
    assert remap_field("train.loss", sweep) == "settings.loss"
    assert remap_field("net.n_inputs", sweep) == "settings.net_dict.n_inputs"
    generate = field_map(hdlgen_pb2.GenerateRequest)
    assert remap_field("optim_params.fp_dec", generate) == "optim_params.fp_dec"
    assert "train" not in generate and "net" not in generate  # no such field in the request
