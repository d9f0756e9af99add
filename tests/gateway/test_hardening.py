"""Issue 16, cheap attacks on a shared gateway: spec parsing, grid size, uploads, leaks and codes.

Each test names the item of the issue it proves; none runs stage work (the offline gateway's
services are unreachable) except the library-level data checks, which need no server.
"""

from __future__ import annotations

import io
import json
import zipfile

import grpc
import numpy as np
import pytest
import yaml
from gw_support import ALICE, BOB, tiny_npz, tiny_spec

from spiker.data.datasets import check_npz_headers
from spiker.errors import DataError, SpecError
from spiker.flow.spec import load_flow_spec
from spiker.flow.spec_text import parse_spec_text
from spiker_api.errors import error_detail
from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.records import scrub_paths
from spiker_gateway.validate import Limits, validate_spec


def _fails(code: grpc.StatusCode, fn, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    assert info.value.code() == code, f"{info.value.code()} != {code}: {info.value.details()}"
    return {**error_detail(info.value), "details": info.value.details() or ""}


# -- item 8: one parser, one behaviour ---------------------------------------------------------

def test_small_lr_written_as_json_is_a_number_for_gateway_and_library(tmp_path) -> None:
    """``lr: 0.00001`` in YAML becomes JSON ``1e-05``; both the gateway and ``spiker train`` read a float."""
    yaml_path = tmp_path / "flow.yaml"
    yaml_path.write_text(yaml.safe_dump(tiny_spec(train={"epochs": 1, "lr": 0.00001})))
    library = load_flow_spec(yaml_path)
    text = json.dumps(library.to_dict())
    assert "1e-05" in text
    gateway = validate_spec(text, Limits())
    assert gateway.train.lr == library.train.lr == 1e-05
    json_path = tmp_path / "flow.json"
    json_path.write_text(text)
    assert load_flow_spec(json_path).train.lr == 1e-05
    assert parse_spec_text("a: 1e-05\nb: -2.5E+3\nc: 7\nd: 1.0.0\n") == {"a": 1e-05, "b": -2500.0, "c": 7,
                                                                       "d": "1.0.0"}


@pytest.mark.parametrize("text,field", [
    ("name: a\nname: b\n", "name"),
    ('{"train": {"lr": 0.1, "lr": 0.2}}', "lr"),
    ("a: &x [1]\nb: *x\n", "spec"),
    ("[" * 40 + "]" * 40, "spec"),
])
def test_parser_refuses_duplicates_aliases_and_depth(text: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec_text(text)
    assert info.value.key == field


# -- item 11: names, empty sections, explicit bit-widths ----------------------------------------

@pytest.mark.parametrize("change,field", [
    ({"name": "."}, "name"),
    ({"name": ".."}, "name"),
    ({"name": "x" * 5000}, "name"),
    ({"dataset": []}, "dataset"),
    ({"train": []}, "train"),
    ({"optimize": []}, "optimize"),
    # fp_dec >= neurons_bw: structurally infeasible
    ({"select": {"optim_params": {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 6}}}, "select.optim_params"),
    # threshold 1.0 at fp_dec 5 needs 32, a 6-bit membrane holds 31
    ({"select": {"optim_params": {"weights_bw": 4, "neurons_bw": 6, "fp_dec": 5}}}, "select.optim_params"),
])
def test_bad_names_empty_sections_and_infeasible_params_rejected_at_submit(change: dict, field: str) -> None:
    spec = tiny_spec(**change)
    spec["net"]["layer_0"]["threshold"] = 1.0
    with pytest.raises(SpecError) as info:
        validate_spec(json.dumps(spec), Limits())
    assert info.value.key == field
    assert len(str(info.value)) < 300  # a 5,000-character name is not echoed back


# -- item 3: the sweep grid is bounded before anything is built --------------------------------

def test_huge_grid_is_rejected_by_arithmetic(monkeypatch) -> None:
    import itertools

    def no_product(*args, **kwargs):
        raise AssertionError("the grid was materialised")

    monkeypatch.setattr(itertools, "product", no_product)
    ranges = {k: {"min": 0, "max": 999} for k in ("weights_bw", "neurons_bw", "fp_dec")}
    spec = tiny_spec(optimize=ranges, select={"max_accuracy_drop": 0.01})
    with pytest.raises(SpecError) as info:
        validate_spec(json.dumps(spec), Limits(max_configs=5000))
    assert info.value.key == "optimize" and "1000000000 configs" in str(info.value)
    small = tiny_spec(optimize={k: {"min": 4, "max": 6} for k in ranges}, select={"max_accuracy_drop": 0.01})
    assert validate_spec(json.dumps(small), Limits(max_configs=27)).optimize.ranges["fp_dec"] == {"min": 4, "max": 6}


# -- item 1: a zip bomb is judged by its array headers -----------------------------------------

def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_npz_headers_bound_the_loaded_size_without_loading() -> None:
    bomb = _npz(x=np.zeros((4096, 8192), np.float32), y=np.zeros(4096, np.int64))  # 128 MiB of zeros
    assert len(bomb) < 1024 * 1024
    with pytest.raises(DataError, match="would take 134217728 bytes"):
        check_npz_headers(io.BytesIO(bomb), max_bytes=64 * 1024 * 1024)
    assert check_npz_headers(io.BytesIO(tiny_npz()))["x"][0] == (90, 8)
    with pytest.raises(DataError, match="Python objects"):
        check_npz_headers(io.BytesIO(_npz(x=np.array([{}], dtype=object), y=np.zeros(1, np.int64))))
    extra = io.BytesIO()
    with zipfile.ZipFile(extra, "w") as z:
        z.writestr("evil.txt", b"x")
    with pytest.raises(DataError, match="unexpected member"):
        check_npz_headers(io.BytesIO(extra.getvalue()))


def test_upload_of_a_zip_bomb_is_rejected(make_gateway, tmp_path) -> None:
    from gw_support import free_port

    from spiker.store import LocalStore
    from spiker_gateway.stages import RetryPolicy

    bomb = _npz(x=np.zeros((1024, 1024), np.float32), y=np.zeros(1024, np.int64))  # 4 MiB loaded, few KB sent
    gw = make_gateway(f"127.0.0.1:{free_port()}", store=LocalStore(tmp_path / "store"),
                      limits=Limits(max_upload_bytes=64 * 1024, max_dataset_bytes=1024 * 1024),
                      policy=RetryPolicy(max_attempts=1))
    assert len(bomb) < 64 * 1024
    with GatewayClient(gw.target, ALICE) as c:
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.upload_bytes, bomb, "bomb.npz")
        assert detail["reason"] == "DATA_ERROR" and "would take" in detail["message"]
        assert c.upload_bytes(tiny_npz(), "tiny.npz").size == len(tiny_npz())


# -- item 11: uploads are owned, sizes are sane, messages show no paths -------------------------

def test_uploads_are_owned_by_their_user(offline_gateway) -> None:
    with GatewayClient(offline_gateway.target, ALICE) as alice, GatewayClient(offline_gateway.target, BOB) as bob:
        ref = alice.upload_bytes(tiny_npz(), "tiny.npz")
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, bob.submit, tiny_spec(ref.sha256))
        assert detail["field"] == "dataset.artifact"
        run = alice.submit(tiny_spec(ref.sha256))
        alice.cancel(run.run_id)
        bob.upload_bytes(tiny_npz(), "mine.npz")  # the same bytes uploaded by bob are bob's too
        run = bob.submit(tiny_spec(ref.sha256))
        bob.cancel(run.run_id)


def test_negative_upload_size_is_invalid(offline_gateway) -> None:
    with GatewayClient(offline_gateway.target, ALICE) as c:
        parts = iter([gateway_pb2.UploadDatasetRequest(header=gateway_pb2.UploadHeader(filename="a.npz", size=-1)),
                      gateway_pb2.UploadDatasetRequest(chunk=tiny_npz())])
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.stub.UploadDataset, parts, metadata=c.metadata)
    assert detail["field"] == "header.size"


def test_error_messages_show_no_server_paths(offline_gateway) -> None:
    assert scrub_paths("no object at '/srv/store/artifacts/sha256/ab/abcd'") == "no object at '.../abcd'"
    assert scrub_paths("ratio 1/2 of net/layer_0") == "ratio 1/2 of net/layer_0"
    root = str(offline_gateway.manager.store.bucket)
    with GatewayClient(offline_gateway.target, ALICE) as c:
        run = c.submit(tiny_spec())
        final = c.wait(run.run_id, timeout=60)
        texts = [final.error.message, *(s.error.message for s in final.stages)]
    assert final.state == gateway_pb2.RUN_STATE_FAILED
    assert not any(root in t for t in texts)


@pytest.mark.parametrize("case", ["one_sample", "label_out_of_range"])
def test_bad_datasets_are_data_errors(tmp_path, case: str) -> None:
    """1-sample datasets and labels the net cannot output are DataError (INVALID_ARGUMENT), not INTERNAL."""
    from spiker.flow.spec import parse_flow_spec
    from spiker.flow.stages import load_data

    x, y = ((np.random.default_rng(0).uniform(size=(1, 8)), np.array([0])) if case == "one_sample"
            else (np.random.default_rng(0).uniform(size=(30, 8)), np.arange(30) % 7))
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    spec = parse_flow_spec({**tiny_spec(), "dataset": {"name": str(path)}})
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert str(tmp_path) not in str(info.value)
    from spiker_api.errors import describe_error

    assert describe_error(info.value).code == "INVALID_ARGUMENT"


# -- item 12: tokens ----------------------------------------------------------------------------

def test_tokens_are_long_reloadable_and_read_from_a_file_or_env(tmp_path, monkeypatch) -> None:
    from spiker_gateway.auth import TokenAuth, client_token, parse_tokens

    with pytest.raises(ValueError, match="32 characters"):
        parse_tokens("a-short-token-of-31-characters! alice", "test")
    path = tmp_path / "tokens"
    old, new = "old-token-0123456789abcdefghijklmnopq", "new-token-0123456789abcdefghijklmnopq"
    path.write_text(f"{old} alice\n")
    auth = TokenAuth.from_sources(path, env={})
    assert auth.user_of((("authorization", f"Bearer {old}"),)) == "alice"
    path.write_text(f"{new} alice\n")
    assert auth.reload()
    assert auth.user_of((("authorization", f"Bearer {new}"),)) == "alice"
    with pytest.raises(Exception, match="unknown token"):
        auth.user_of((("authorization", f"Bearer {old}"),))
    path.write_text("short bob\n")  # a broken file keeps the tokens that work
    assert not auth.reload()
    assert auth.user_of((("authorization", f"Bearer {new}"),)) == "alice"
    mine = tmp_path / "my-token"
    mine.write_text(f"\n{new}\n")
    assert client_token(mine, env={}) == new
    assert client_token(None, env={"SPIKER_TOKEN": old}) == old
    assert client_token(None, env={}) is None


def test_a_client_without_ca_says_it_uses_plaintext(caplog) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="spiker_gateway.client"):
        GatewayClient("127.0.0.1:1", ALICE).close()
        assert not caplog.records  # loopback: nothing leaves the machine
        GatewayClient("gateway.example:50050", ALICE).close()
    assert "PLAINTEXT" in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gateway_process_reloads_its_token_file_on_sighup(tmp_path) -> None:
    """``spiker gateway --tokens FILE``: SIGHUP swaps the tokens without a restart; no token in argv."""
    import os
    import signal
    import subprocess
    import sys

    from gw_support import ROOT, free_port, wait_for, wait_healthy

    old, new = "old-token-0123456789abcdefghijklmnopq", "new-token-0123456789abcdefghijklmnopq"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{old} alice\n")
    port = free_port()
    cmd = [sys.executable, "-m", "spiker_gateway.cli", "gateway", "--host", "127.0.0.1", "--port", str(port),
           "--services", f"127.0.0.1:{free_port()}", "--tokens", str(tokens), "--store", str(tmp_path / "store")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKER_")}
    with open(tmp_path / "gateway.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_healthy(f"127.0.0.1:{port}", timeout=90)
        assert old not in " ".join(cmd) and new not in " ".join(cmd)

        def lists(token: str) -> bool:
            with GatewayClient(f"127.0.0.1:{port}", token) as c:
                try:
                    c.list(timeout=5)
                    return True
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False

        assert lists(old) and not lists(new)
        tokens.write_text(f"{new} alice\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: lists(new), 20, "the new token")
        assert not lists(old)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_tls_gateway_with_a_plaintext_health_port_for_probes(make_gateway, tmp_path) -> None:
    """Kubernetes serves the gateway's TLS from a Secret; kubelet probes reach a plaintext health-only port."""
    import shutil
    import subprocess

    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from gw_support import free_port

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    from spiker.store import LocalStore

    # its own store: the session store holds other tests' runs of alice, and the list below must be empty
    gw = make_gateway(f"127.0.0.1:{free_port()}", store=LocalStore(tmp_path / "store"), tls_cert=str(cert),
                      tls_key=str(key), health_port=0)
    assert gw.health_port
    with grpc.insecure_channel(f"127.0.0.1:{gw.health_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError):  # the probe port serves nothing else
            gateway_list = channel.unary_unary("/spiker.v1.GatewayService/ListRuns")
            gateway_list(b"", timeout=5)
    with GatewayClient(f"localhost:{gw.port}", ALICE, ca_cert=str(cert)) as c:
        assert c.list() == []
