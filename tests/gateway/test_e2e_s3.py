"""End to end on a real S3 server (SeaweedFS on loopback): the digits flow through the gateway, then from cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from gw_support import ALICE

from spiker.store import S3Store
from spiker_api.v1 import gateway_pb2
from spiker_gateway.client import GatewayClient
from spiker_gateway.server import all_targets, build_gateway

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def digits_spec() -> dict:
    """examples/digits.yaml with 5 epochs and a 2x2x2 sweep (the full example takes ~10 minutes here)."""
    spec = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    spec["name"] = "digits-e2e"
    spec["train"]["epochs"] = 5
    spec["optimize"] = {"weights_bw": {"min": 5, "max": 6}, "neurons_bw": {"min": 8, "max": 9},
                        "fp_dec": {"min": 4, "max": 5}, "workers": 2}
    spec["select"] = {"max_accuracy_drop": 0.01}
    spec["hdl"] = {"resources": True}
    spec["simulate"] = {"samples": 200, "trace": True, "workers": 2}
    return spec


@pytest.mark.timeout(1800)
def test_digits_flow_on_s3_then_from_cache(s3_server, tmp_path) -> None:
    from spiker_app.services import SERVICE_NAMES, build_stage_server
    from spiker_services.common.runtime import Runtime

    info = s3_server.make_bucket()
    store = S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, info.secure)
    runtime = Runtime(store, max_jobs=2, work_root=tmp_path / "work", worker_env=info.env())
    services = build_stage_server(SERVICE_NAMES, runtime, port=0)
    gw = build_gateway(store, all_targets(f"127.0.0.1:{services.port}"), {ALICE: "alice"})
    try:
        with GatewayClient(gw.target, ALICE) as c:
            first = c.wait(c.submit(digits_spec()).run_id, timeout=1700)
            assert first.state == gateway_pb2.RUN_STATE_SUCCEEDED, first.error
            report = json.loads(first.report_json)
            print(json.dumps({k: report[k] for k in ("float_accuracy", "quant_accuracy", "hw_accuracy", "mismatches",
                                                     "samples", "optim_params", "cycles_mean", "bound_mean",
                                                     "resources", "stages")}, indent=1))
            assert report["hw_accuracy"] >= 0.94
            assert report["mismatches"] == 0 and report["samples"] >= 200
            assert report["cycles_mean"] > 0 and report["bound_mean"] > 0
            assert all(report["resources"][k] is not None for k in ("lut", "ff", "bram", "dsp"))
            assert report["resources"]["lut"] > 0
            stored = store.get_json(f"runs/{first.run_id}/report.json")
            assert stored["hw_accuracy"] == report["hw_accuracy"]
            keys = set(store.list(f"runs/{first.run_id}/"))
            assert {f"runs/{first.run_id}/{n}" for n in ("report.md", "plots/training.png", "plots/pareto.png",
                                                          "vhdl/files.txt")} <= keys

            second = c.wait(c.submit(digits_spec()).run_id, timeout=300)
            assert second.state == gateway_pb2.RUN_STATE_SUCCEEDED
            record = store.get_json(f"runs/{second.run_id}/record.json")
            assert [(s["name"], s["cached"], s.get("attempts")) for s in record["stages"]] == [
                ("train", True, 0), ("optimize", True, 0), ("hdlgen", True, 0), ("synth", True, 0),
                ("simulate", True, 0)]
            assert json.loads(second.report_json)["hw_accuracy"] == report["hw_accuracy"]
            assert sum(s["seconds"] for s in record["stages"]) < 30
    finally:
        gw.stop(0.5)
        services.stop(0).wait(10)
