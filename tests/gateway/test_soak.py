"""Issue 16 soak: 2 users, 60 tiny runs on real S3 (SeaweedFS) while the stage services are SIGKILLed, the
gateway is restarted and S3 stops answering for 30 s. All on loopback.

Checks: every run ends in the state its clients saw (a final state once seen never changes), no run
is lost, none finishes twice, every artifact of every run verifies, and the gateway's RSS at the end
equals its RSS after warm-up within 10 %.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import grpc
import pytest
from gw_support import ALICE, BOB, ROOT, ServicesProcess, free_port, tiny_npz, tiny_spec, wait_for, wait_healthy

from spiker.store import ArtifactRef, S3Store
from spiker_gateway.client import GatewayClient, state_name

pytestmark = pytest.mark.slow

RUNS_PER_USER = 30
SEEDS = 4  # distinct specs: the rest of the runs are served from the stage cache
FINAL = ("succeeded", "failed", "cancelled")
OUTAGE_S = 30.0


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class GatewayProcess:
    """``python -m spiker_gateway.cli gateway`` on a fixed port, restartable; its log collects every start."""

    def __init__(self, port: int, services: str, tokens: Path, env: dict[str, str], log: Path) -> None:
        self.port, self.services, self.tokens, self.env, self.log = port, services, tokens, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spiker_gateway.cli", "gateway", "--host", "127.0.0.1", "--port", str(self.port),
               "--services", self.services, "--tokens", str(self.tokens), "--max-runs", "2", "--web-port", "-1"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=log)
        wait_healthy(self.target, timeout=120)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Observer(threading.Thread):
    """Polls one user's ListRuns and records every state each run was seen in (errors are outages)."""

    def __init__(self, target: str, token: str) -> None:
        super().__init__(daemon=True)
        self.target, self.token = target, token
        self.seen: dict[str, list[str]] = defaultdict(list)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()

    def finished(self) -> int:
        with self.lock:
            return sum(1 for states in self.seen.values() if states and states[-1] in FINAL)

    def run(self) -> None:
        with GatewayClient(self.target, self.token) as client:
            while not self.stop_flag.wait(0.5):
                try:
                    runs = client.list(timeout=5)
                except grpc.RpcError:
                    continue
                with self.lock:
                    for run in runs:
                        states = self.seen[run.run_id]
                        state = state_name(run.state)
                        if not states or states[-1] != state:
                            states.append(state)


def _submit(client: GatewayClient, spec: dict) -> str:
    """Submit, waiting out the submit rate limit and a gateway restart."""
    for _ in range(200):
        try:
            return client.submit(spec, timeout=30).run_id
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
                time.sleep(1.0)
                continue
            raise
    raise AssertionError("could not submit")


@pytest.mark.timeout(900)
def test_soak_two_users_sixty_runs_with_faults(tmp_path) -> None:
    from s3_server import SeaweedS3, find_weed

    if find_weed() is None:
        pytest.skip("SeaweedFS 'weed' binary not found")
    weed = SeaweedS3(bucket="spiker-soak")
    info = weed.start()
    try:
        _soak(weed, info, tmp_path)
    finally:
        weed.stop()


def _soak(weed, info, tmp_path: Path) -> None:  # noqa: ANN001
    store = S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, info.secure)
    env = {**info.env(), "SPIKER_SERVICE_TOKEN": "soak-service-token-0123456789abcdefgh"}
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALICE} alice\n{BOB} bob\n")
    services = ServicesProcess(free_port(), env, tmp_path / "services.log")
    gateway = GatewayProcess(free_port(), services.target, tokens, env, tmp_path / "gateway.log")
    observers = [Observer(gateway.target, ALICE), Observer(gateway.target, BOB)]
    submitted: dict[str, list[str]] = {"alice": [], "bob": []}
    clients: dict[str, GatewayClient] = {}
    stopped = False
    started = time.monotonic()
    try:
        services.start()
        gateway.start()
        for o in observers:
            o.start()
        clients.update(alice=GatewayClient(gateway.target, ALICE), bob=GatewayClient(gateway.target, BOB))
        refs = {user: c.upload_bytes(tiny_npz(), f"{user}.npz") for user, c in clients.items()}

        def submit_all(user: str) -> None:
            for i in range(RUNS_PER_USER):
                spec = tiny_spec(refs[user].sha256, name=f"soak-{user}-{i}",
                                 train={"epochs": 1, "lr": 0.01, "seed": i % SEEDS})
                submitted[user].append(_submit(clients[user], spec))

        submitters = [threading.Thread(target=submit_all, args=(u,)) for u in clients]
        for t in submitters:
            t.start()

        def finished() -> int:
            return sum(o.finished() for o in observers)

        wait_for(lambda: finished() >= 4, 300, "4 runs to finish", 0.5)
        services.kill()  # fault 1: SIGKILL the stage services (and their jobs) mid-flow
        services.start()
        for t in submitters:
            t.join(120)
        assert sum(len(v) for v in submitted.values()) == 2 * RUNS_PER_USER
        wait_for(lambda: finished() >= 12, 300, "12 runs to finish", 0.5)
        gateway.stop()  # fault 2: a gateway restart with runs queued and running
        gateway.start()
        wait_for(lambda: finished() >= 18, 300, "18 runs to finish", 0.5)
        assert gateway.proc is not None
        rss_before = _rss(gateway.proc.pid)
        os.kill(weed.proc.pid, signal.SIGSTOP)  # fault 3: S3 answers nothing for 30 s
        stopped = True
        time.sleep(OUTAGE_S)
        os.kill(weed.proc.pid, signal.SIGCONT)
        stopped = False
        all_ids = [r for ids in submitted.values() for r in ids]
        wait_for(lambda: finished() >= len(all_ids), 420, "all runs to finish", 1.0)
        rss_after = _rss(gateway.proc.pid)
        time.sleep(1.5)  # one more observation of every run
    finally:
        if stopped:
            os.kill(weed.proc.pid, signal.SIGCONT)
        for o in observers:
            o.stop_flag.set()
        gateway.stop()
        services.stop()
        for c in clients.values():
            c.close()
    print(f"soak: {len(all_ids)} runs in {time.monotonic() - started:.0f} s")
    seen = {**observers[0].seen, **observers[1].seen}
    # 0 lost: every accepted run was listed and ended; the state a client saw is the state that stays
    assert set(seen) == set(all_ids)
    log = (tmp_path / "gateway.log").read_text()
    resumed = len(re.findall(r"resuming run r-", log))
    retried = sum(1 for line in log.splitlines() if "UNAVAILABLE" in line and "retry" in line)
    print(f"soak: {resumed} run(s) resumed by the restarted gateway, {retried} stage retries")
    assert resumed > 0  # the restart hit unfinished runs
    for owner, ids in submitted.items():
        for run_id in ids:
            states = seen[run_id]
            first_final = next(i for i, s in enumerate(states) if s in FINAL)
            assert len(set(states[first_final:])) == 1, (run_id, states)
            record = store.get_json(f"runs/{run_id}/record.json")
            assert record["owner"] == owner and record["state"] == states[-1] == "succeeded", (run_id, states)
            # 0 run twice: each run reached its final state once, on one gateway
            assert len(re.findall(rf"run {run_id} (?:succeeded|failed|cancelled)", log)) == 1, run_id
            for stage in record["stages"]:  # every artifact verifies
                for ref in (stage.get("outputs") or {}).values():
                    store.verify(ArtifactRef.from_dict(ref))
            for key in record["artifacts"].values():
                assert store.exists(key), key
    print(f"gateway RSS after warm-up {rss_before / 2**20:.1f} MiB, at the end {rss_after / 2**20:.1f} MiB "
          f"(ratio {rss_after / rss_before:.3f})")
    assert abs(rss_after - rss_before) <= 0.10 * rss_before
