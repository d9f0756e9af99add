"""Authentication, per-user isolation, upload and spec validation of the gateway (no stage work runs)."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml
from gw_support import ALICE, BOB, tiny_npz, tiny_spec, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from spiker_api.errors import error_detail
from spiker_api.v1 import gateway_pb2
from spiker_gateway.auth import TokenAuth, load_tokens, parse_tokens
from spiker_gateway.client import GatewayClient


def _fails(code: grpc.StatusCode, fn, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = fn(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
            list(result)
    assert info.value.code() == code, f"{info.value.code()} != {code}: {info.value.details()}"
    return error_detail(info.value)


def test_token_file_and_env(tmp_path) -> None:
    t1, t2, t3, t4 = (f"secret-token-{i}-0123456789abcdefghij" for i in range(1, 5))
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n{t1} alice\n\n{t2}\tbob  # trailing\n")
    table = load_tokens(path, env={"SPIKER_GATEWAY_TOKENS": f"{t3}:carol,{t4} dave"})
    assert table == {t1: "alice", t2: "bob", t3: "carol", t4: "dave"}
    for bad in ("lonely", "short al", f"{t1} al/ice", "only-31-characters-long-0123456 al"):
        with pytest.raises(ValueError):
            parse_tokens(bad, "test")
    auth = TokenAuth(table)
    assert auth.user_of((("authorization", f"Bearer {t3}"),)) == "carol"
    with pytest.raises(ValueError):
        TokenAuth({})


def test_no_token_and_wrong_token_are_unauthenticated(offline_gateway) -> None:
    for token in (None, "tok-nobody-0123456789", ""):
        with GatewayClient(offline_gateway.target, token) as c:
            _fails(grpc.StatusCode.UNAUTHENTICATED, c.submit, tiny_spec())
            _fails(grpc.StatusCode.UNAUTHENTICATED, c.list)
            _fails(grpc.StatusCode.UNAUTHENTICATED, c.get, "r-20260101-000000-00000000")
            _fails(grpc.StatusCode.UNAUTHENTICATED, c.cancel, "r-20260101-000000-00000000")
            _fails(grpc.StatusCode.UNAUTHENTICATED, c.watch, "r-20260101-000000-00000000")
            _fails(grpc.StatusCode.UNAUTHENTICATED, c.upload_bytes, tiny_npz(), "a.npz")
    with grpc.insecure_channel(offline_gateway.target) as ch:  # not a bearer header
        from spiker_api.v1 import gateway_pb2_grpc

        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        _fails(grpc.StatusCode.UNAUTHENTICATED, stub.ListRuns, gateway_pb2.ListRunsRequest(),
               metadata=(("authorization", f"Basic {ALICE}"),))


def test_users_see_only_their_own_runs(offline_gateway) -> None:
    with GatewayClient(offline_gateway.target, ALICE) as alice, GatewayClient(offline_gateway.target, BOB) as bob:
        run = alice.submit(tiny_spec())
        assert run.owner == "alice" and run.run_id
        assert [r.run_id for r in alice.list()] == [run.run_id]
        assert bob.list() == []
        for call in (bob.get, bob.cancel, bob.watch):
            detail = _fails(grpc.StatusCode.NOT_FOUND, call, run.run_id)
            assert detail["field"] == "run_id"
        assert alice.get(run.run_id).run_id == run.run_id
        for bad in ("../../etc/passwd", "r-1", "runs/x", ""):
            detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, alice.get, bad)
            assert detail["field"] == "run_id"
        # the services are unreachable: the run fails with UNAVAILABLE recorded, not lost
        final = alice.wait(run.run_id, timeout=60)
        assert final.state == gateway_pb2.RUN_STATE_FAILED and final.error.reason == "UNAVAILABLE"


@pytest.mark.parametrize("name", ["../evil.npz", "a/b.npz", "/etc/x.npz", ".hidden.npz", "data.txt", "..npz",
                                  "x" * 200 + ".npz", "bad\x00name.npz", "..\\evil.npz"])
def test_upload_rejects_path_names(offline_gateway, name: str) -> None:
    with GatewayClient(offline_gateway.target, ALICE) as c:
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.upload_bytes, tiny_npz(), name)
        assert detail["field"] == "header.filename"
    store = offline_gateway.manager.store
    assert not [k for k in store.list("") if not k.startswith(("artifacts/", "index/"))]


def test_upload_size_limit_and_content(offline_gateway) -> None:
    limit = offline_gateway.manager.limits.max_upload_bytes
    with GatewayClient(offline_gateway.target, ALICE) as c:
        detail = _fails(grpc.StatusCode.RESOURCE_EXHAUSTED, c.upload_bytes, b"PK" + b"0" * limit, "big.npz")
        assert detail["reason"] == "UPLOAD_TOO_LARGE"
        # a header that lies about the size is caught while streaming
        parts = iter([gateway_pb2.UploadDatasetRequest(header=gateway_pb2.UploadHeader(filename="a.npz", size=1)),
                      *[gateway_pb2.UploadDatasetRequest(chunk=b"PK" + b"0" * 40_000)] * 2])
        _fails(grpc.StatusCode.RESOURCE_EXHAUSTED, c.stub.UploadDataset, parts, metadata=c.metadata)
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.upload_bytes, b"not a zip", "a.npz")
        assert detail["field"] == "chunk"
        ref = c.upload_bytes(tiny_npz(), "tiny.npz")
        assert ref.key.startswith("artifacts/sha256/") and ref.size == len(tiny_npz())


MALFORMED = [
    ("net:\n  - 1\n", "net"),
    ("[1, 2]", "spec"),
    ("name: ok\nnet: {n_cycles: 5}\ntrain: {epochs: 0}", "net"),
    (json.dumps(tiny_spec(train={"epochs": 0})), "train.epochs"),
    (json.dumps(tiny_spec(train={"lr": float("nan")})), "train.lr"),
    (json.dumps(tiny_spec(train={"epochs": 10**12})), "train.epochs"),
    (json.dumps(tiny_spec(train={"epochs": 100000})), "train.epochs"),
    (json.dumps(tiny_spec(bogus={})), "bogus"),
    (json.dumps(tiny_spec(dataset={"name": "/etc/passwd.npz"})), "dataset.name"),
    (json.dumps(tiny_spec(dataset={"name": "digits", "artifact": "nope"})), "dataset.artifact"),
    (json.dumps(tiny_spec(dataset={"name": "x.npz", "artifact": "0" * 64})), "dataset.artifact"),
    (json.dumps(tiny_spec(select={"optim_params": {"weights_bw": 4}})), "select.optim_params"),
    (json.dumps(tiny_spec(simulate={"samples": -3})), "simulate.samples"),
    (json.dumps(tiny_spec(simulate={"workers": 1000})), "simulate.workers"),
    ("a: &x [1]\nb: *x\n", "spec"),
    ("{unclosed", "spec"),
]


@pytest.mark.parametrize("text,field", MALFORMED)
def test_malformed_specs_name_the_field(offline_gateway, text: str, field: str) -> None:
    with GatewayClient(offline_gateway.target, ALICE) as c:
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.submit, text)
    assert detail["field"] == field or detail["field"].startswith(field + "."), detail


def test_network_size_limit_names_the_layer(offline_gateway) -> None:
    big = tiny_spec()
    big["net"]["layer_1"]["n_neurons"] = 600  # limit 512 neurons on this gateway
    with GatewayClient(offline_gateway.target, ALICE) as c:
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.submit, big)
    assert detail["field"] == "net.layer_1.n_neurons"


_scalars = hs.one_of(hs.none(), hs.booleans(), hs.integers(-2**40, 2**40), hs.floats(allow_nan=True),
                     hs.text(max_size=8))
_values = hs.recursive(_scalars, lambda kids: hs.one_of(hs.lists(kids, max_size=3),
                                                        hs.dictionaries(hs.text(max_size=6), kids, max_size=3)),
                       max_leaves=6)
_paths = hs.sampled_from(["name", "dataset", "dataset.name", "dataset.encoding", "dataset.batch_size",
                          "dataset.artifact", "net", "net.n_cycles", "net.n_inputs", "net.layer_0",
                          "net.layer_0.beta", "net.layer_0.n_neurons", "net.layer_1.neuron_model", "net.layer_7",
                          "train", "train.epochs", "train.lr", "train.loss", "optimize", "optimize.weights_bw",
                          "optimize.workers", "select", "select.optim_params", "select.max_accuracy_drop", "hdl",
                          "hdl.resources", "simulate", "simulate.samples", "simulate.trace", "extra"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=hs.lists(hs.tuples(_paths, _values), min_size=1, max_size=3), as_yaml=hs.booleans())
def test_fuzzed_specs_run_or_name_the_field(offline_gateway, mutations, as_yaml: bool) -> None:
    """Every mutated spec is either accepted or rejected INVALID_ARGUMENT naming a field; never a server error."""
    spec = tiny_spec()
    for path, value in mutations:
        node = spec
        *parents, leaf = path.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = value
    try:
        text = yaml.safe_dump(spec) if as_yaml else json.dumps(spec)
    except (ValueError, yaml.YAMLError):
        return
    with GatewayClient(offline_gateway.target, ALICE) as c:
        try:
            run = c.submit(text)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details(), spec)
            assert error_detail(err)["field"], err.details()
            return
        assert run.run_id
        c.cancel(run.run_id)


def test_runs_survive_in_the_store_and_queue_position(offline_gateway) -> None:
    with GatewayClient(offline_gateway.target, ALICE) as c:
        run = c.submit(tiny_spec())
        wait_for(lambda: c.get(run.run_id).state == gateway_pb2.RUN_STATE_FAILED, 60, "failed run")
    rec = offline_gateway.manager.store.get_json(f"runs/{run.run_id}/record.json")
    assert rec["owner"] == "alice" and rec["state"] == "failed" and rec["stages"][0]["attempts"] == 1


def test_tls_gateway(make_gateway, tmp_path) -> None:
    """--tls-cert/--tls-key: a TLS client with the CA gets through; a plaintext client does not."""
    import shutil
    import subprocess

    from gw_support import free_port

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    gw = make_gateway(f"127.0.0.1:{free_port()}", tls_cert=str(cert), tls_key=str(key))
    with GatewayClient(f"localhost:{gw.port}", ALICE, ca_cert=str(cert)) as c:
        assert c.list() is not None
    with GatewayClient(gw.target, ALICE) as plain:
        with pytest.raises(grpc.RpcError) as info:
            plain.list(timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_surrogate_keys_are_invalid_argument(offline_gateway) -> None:
    """Found by the fuzz: a key with lone surrogates (valid JSON escapes) must not break the error reply."""
    text = json.dumps(tiny_spec(dataset={"name": "digits", "\ud800\udc00": 1}))
    with GatewayClient(offline_gateway.target, ALICE) as c:
        detail = _fails(grpc.StatusCode.INVALID_ARGUMENT, c.submit, text)
    assert detail["field"].startswith("dataset.")
