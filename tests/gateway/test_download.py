"""Results out: GetArtifact streams a run's files to its owner only; ``spiker get --download`` writes them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import pytest
from gw_support import ALICE, BOB

from spiker_api.errors import error_detail
from spiker_gateway.cli import main
from spiker_gateway.client import GatewayClient

pytestmark = pytest.mark.slow  # one tiny real run per user (train, hdlgen, GHDL simulation)


def _error(fn, *args) -> tuple[grpc.StatusCode, dict[str, str]]:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as info:
        fn(*args)
    return info.value.code(), error_detail(info.value)


def test_owner_downloads_files_checked_by_sha256(finished_runs) -> None:  # noqa: ANN001
    gw, alice_run, _ = finished_runs
    with GatewayClient(gw.target, ALICE) as client:
        run = client.get(alice_run)
        key = run.artifacts["vhdl/files.txt"]
        header, chunks = client.stream_artifact(alice_run, "vhdl/files.txt")
        data = b"".join(chunks)
        assert header.ref.key == key and header.ref.size == len(data) > 0
        assert header.ref.sha256 == hashlib.sha256(data).hexdigest() and header.content_type == "text/plain"
        assert b".vhd" in data
        assert client.get_artifact(alice_run, key) == data  # by store key too
        model = client.get_artifact(alice_run, "train.model")
        assert len(model) == run.stages[0].outputs["model"].size


def test_others_and_unlisted_keys_are_not_found(finished_runs) -> None:  # noqa: ANN001
    gw, alice_run, bob_run = finished_runs
    with GatewayClient(gw.target, BOB) as bob, GatewayClient(gw.target, ALICE) as alice:
        code, detail = _error(bob.get_artifact, alice_run, "report.json")
        assert code == grpc.StatusCode.NOT_FOUND and detail["field"] == "run_id"
        bob_key = bob.get(bob_run).artifacts["report.json"]
        code, detail = _error(alice.get_artifact, alice_run, bob_key)  # bob's key through alice's run
        assert code == grpc.StatusCode.NOT_FOUND and detail == {**detail, "field": "name",
                                                                 "reason": "ARTIFACT_NOT_FOUND"}
        for name in ("runs/../record.json", "cache/train", "tokens", ""):
            assert _error(alice.get_artifact, alice_run, name)[0] == grpc.StatusCode.NOT_FOUND
        assert _error(alice.get_artifact, "not-a-run", "report.json")[0] == grpc.StatusCode.INVALID_ARGUMENT
    with GatewayClient(gw.target, None) as anonymous:
        assert _error(anonymous.get_artifact, alice_run, "report.json")[0] == grpc.StatusCode.UNAUTHENTICATED


def test_spiker_get_download_writes_the_results(finished_runs, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    gw, alice_run, _ = finished_runs
    out = tmp_path / "dl"
    monkeypatch.setenv("SPIKER_TOKEN", ALICE)
    code = main(["get", alice_run, "--download", str(out), "--gateway", gw.target, "-q"])
    assert code == 0, capsys.readouterr().err
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    for expected in ("model.pt", "sim.json", "report.json", "report.md", "record.json", "plots/training.png",
                     "vhdl/files.txt", "history.json", "sweep.csv", "sweep.json", "plots/pareto.png"):
        assert expected in files, files
    order = (out / "vhdl" / "files.txt").read_text().split()
    assert order and all((out / "vhdl" / name).is_file() for name in order)
    assert json.loads((out / "report.json").read_text())["run_id"] == alice_run
    assert not [f for f in files if f.endswith(".part")]
    assert f"{len(files)} files" in capsys.readouterr().err


def test_spiker_get_into_a_closed_pipe(finished_runs) -> None:  # noqa: ANN001
    """``spiker get RUN | head``: the reader leaves early; no BrokenPipeError traceback, exit 141."""
    import os
    import subprocess
    import sys

    from gw_support import ROOT

    gw, alice_run, _ = finished_runs
    env = {**os.environ, "SPIKER_TOKEN": ALICE, "SPIKER_GATEWAY": gw.target}
    proc = subprocess.Popen([sys.executable, "-m", "spiker_app", "get", alice_run, "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_the_temporary_copy_goes_even_when_nothing_was_read(tmp_path) -> None:  # noqa: ANN001
    """A client that leaves after the header (no chunk read) leaves no temporary copy behind."""
    from spiker.store import LocalStore
    from spiker_gateway import artifacts

    store = LocalStore(tmp_path / "store")
    ref = store.put_bytes(b"x" * 1000)
    _, chunks = artifacts.read_chunks(store, ref.key)
    assert chunks.path.is_file()
    chunks.close()  # what serve's finally and the web's background task do
    assert not chunks.path.exists()
    _, chunks = artifacts.read_chunks(store, ref.key, chunk=300)
    assert b"".join(chunks) == b"x" * 1000 and not chunks.path.exists()  # read to the end: gone too
