"""The Docker sweep executor and a stage service in a container, on a real Docker engine, via the SDK.

Runs whenever an engine can be had: ``DOCKER_HOST``/the default socket, else (as root) a
``dockerd --iptables=false --bridge=none`` started here with its own data-root under
``SPIKER_DOCKER_EXEC_ROOT`` (default /tmp/spiker-docker-exec-test). Otherwise every test skips
and says why. No registry is reachable and building deploy/docker/Dockerfile takes 10-20 minutes
(tests/deploy/test_deploy_docker.py, opt-in), so the image here is a slim test image: ``docker
import`` of an empty root file system whose entry point is the host's ``spiker`` (this venv),
with the host's Python install, the repository and the system libraries bind-mounted read-only
into each container (``SPIKER_SWEEP_DOCKER_VOLUMES``). The executor, the worker command line,
the store contract and the container limits are the production ones; only the image differs.

Must show (issue 20): a 4-shard sweep through the optimizer service with
``SPIKER_SWEEP_EXECUTOR=docker`` equals the in-process table row for row; cancelling mid-sweep
leaves no container; a killed shard container is retried and the sweep still completes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import grpc
import pytest
import torch
from deploy_helpers import REPO
from docker_engine import docker_engine
from test_deploy_sweep_workers import DATASET, NET, RANGES, _npz, _rows

from spiker import NetBuilder, Optimizer, SweepResult, data
from spiker.store import ArtifactStore, LocalStore, open_store
from spiker_api.convert import net_dict_to_proto, ref_from_proto, ref_to_proto
from spiker_api.errors import describe_error
from spiker_api.v1 import common_pb2, optimizer_pb2, optimizer_pb2_grpc
from spiker_app.services import build_stage_server
from spiker_services.common.runtime import Runtime
from spiker_services.optimizer import docker_job as dj
from spiker_services.optimizer.task import shard_key

TEST_IMAGE = "spiker-hostenv:test"
SHARDS = 4
#: every wait on the engine or the service is bounded by this (seconds)
SWEEP_DEADLINE = 420


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[Any, str]]:
    """A Docker SDK client and its DOCKER_HOST (an engine started here when none runs)."""
    with docker_engine(Path(os.environ.get("SPIKER_DOCKER_EXEC_ROOT", "/tmp/spiker-docker-exec-test"))) as found:
        yield found


def _host_binds() -> dict[str, dict[str, str]]:
    """Read-only binds that let the empty test image run this host's venv: system dirs, Python, repo."""
    paths = [p for p in ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc") if os.path.exists(p)]
    paths += [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(REPO)]
    out: dict[str, dict[str, str]] = {}
    for path in paths:
        if not any(path == p or path.startswith(p + "/") for p in out):
            out[path] = {"bind": path, "mode": "ro"}
    return out


@pytest.fixture(scope="module")
def test_image(engine: tuple[Any, str]) -> str:
    """The slim test image: an empty root fs (mount points only) whose entry point is the host's spiker."""
    client, _ = engine
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = {"tmp", "proc", "sys", "dev", *(p.strip("/").split("/")[0] for p in _host_binds())}
        for path in sorted(dirs):
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if path == "tmp" else 0o755
            tar.addfile(info)
    venv_bin = Path(sys.executable).parent
    repo, tag = TEST_IMAGE.split(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag, changes=[
        f"ENV PATH={venv_bin}:/usr/local/bin:/usr/bin:/bin", f"ENV PYTHONPATH={REPO}", "ENV HOME=/tmp",
        "WORKDIR /tmp", 'ENTRYPOINT ["spiker"]', 'CMD ["--help"]'])
    client.images.get(TEST_IMAGE)
    return TEST_IMAGE


def _volumes_env() -> str:
    return ",".join(f"{host}:{b['bind']}:{b['mode']}" for host, b in _host_binds().items())


def _sweep_containers(client: Any) -> list[Any]:
    """The sweeps' containers; listed again when one is removed while the list is read (the SDK
    inspects each container it lists, and the executor removes finished shards meanwhile)."""
    for _ in range(dj.LIST_RETRIES):
        with contextlib.suppress(docker.errors.NotFound):
            return client.containers.list(all=True, filters={"label": dj.LABEL_SWEEP})
    return client.containers.list(all=True, filters={"label": dj.LABEL_SWEEP})


@pytest.fixture
def optimizer(engine: tuple[Any, str], test_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              request: pytest.FixtureRequest) -> Iterator[tuple[Any, ArtifactStore, dict[str, Any]]]:
    """An in-process optimizer service whose sweeps run as containers of the test image.

    With ``SPIKER_DOCKER_EXECUTOR_IMAGE`` (e.g. ``spiker:test``, built by test_deploy_docker.py) the
    shards run in that image instead, as its non-root user, against SeaweedFS S3 on loopback.
    """
    client, host = engine
    settings_env = {"DOCKER_HOST": host, "SPIKER_SWEEP_EXECUTOR": "docker", "SPIKER_SWEEP_IMAGE": test_image,
                    "SPIKER_SWEEP_DOCKER_VOLUMES": _volumes_env(), "SPIKER_SWEEP_DOCKER_USER": "0:0",
                    "SPIKER_SWEEP_DOCKER_CPUS": "1", "SPIKER_SWEEP_DOCKER_MEMORY": "2g",
                    "SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX": "2", "SPIKER_SWEEP_TIMEOUT": str(SWEEP_DEADLINE)}
    real_image = os.environ.get("SPIKER_DOCKER_EXECUTOR_IMAGE", "")
    if real_image:
        request.getfixturevalue("s3_env")
        settings_env["SPIKER_SWEEP_IMAGE"] = real_image
        for var in ("SPIKER_SWEEP_DOCKER_VOLUMES", "SPIKER_SWEEP_DOCKER_USER"):
            settings_env.pop(var)
            monkeypatch.delenv(var, raising=False)
    for var, value in settings_env.items():
        monkeypatch.setenv(var, value)
    store = open_store() if real_image else LocalStore(tmp_path / "store")
    runtime = Runtime(store, max_jobs=2, work_root=tmp_path / "work")
    server = build_stage_server(["optimizer"], runtime, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    snn = NetBuilder(NET).build(seed=0)
    with torch.no_grad():
        for fc in snn.fcs:
            fc.weight.mul_(2.0)
    model_ref = store.put_file(snn.save(tmp_path / "model.pt"), kind="checkpoint")
    npz_ref = store.put_bytes(_npz(), kind="dataset")
    settings = optimizer_pb2.SweepSettings(
        model=ref_to_proto(model_ref), net_dict=net_dict_to_proto(NET),
        dataset=common_pb2.DatasetSpec(npz=ref_to_proto(npz_ref), **DATASET),
        ranges=common_pb2.OptimRanges(**{k: common_pb2.BitRange(min=v["min"], max=v["max"])
                                         for k, v in RANGES.items()}))
    npz_path = tmp_path / "dataset.npz"
    npz_path.write_bytes(_npz())
    ctx = {"settings": settings, "snn": snn, "npz": npz_path}
    try:
        yield optimizer_pb2_grpc.OptimizerServiceStub(channel), store, ctx
    finally:
        channel.close()
        server.stop(0).wait(30)
        for container in _sweep_containers(client):
            with contextlib.suppress(docker.errors.APIError):  # gone already, or being removed
                container.remove(force=True)


def _reference(ctx: dict[str, Any]) -> SweepResult:
    _, test_loader = data.load(str(ctx["npz"]), n_cycles=NET["n_cycles"], **DATASET)
    return Optimizer(ctx["snn"], NET, RANGES, loss="ce_rate", progress=False).optimize(test_loader)


def _drain(stream: Any) -> tuple[list[Any], Any]:
    progress, results = [], []
    for response in stream:
        if response.WhichOneof("event") == "progress":
            progress.append(response.progress)
        else:
            results.append(response.result)
    assert len(results) == 1
    return progress, results[0]


def _wait_for(predicate: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(SWEEP_DEADLINE + 120)
def test_docker_sweep_equals_in_process(engine: tuple[Any, str], optimizer: Any) -> None:
    """4 shard containers through the optimizer service == Optimizer.optimize, row for row; none left."""
    client, _ = engine
    stub, store, ctx = optimizer
    request = optimizer_pb2.OptimizeRequest(settings=ctx["settings"], shard_count=SHARDS, max_accuracy_drop=1.0)
    progress, result = _drain(stub.Optimize(request, timeout=SWEEP_DEADLINE))
    merged = SweepResult.from_dict(json.loads(store.get_bytes(ref_from_proto(result.sweep_json, "sweep"))))
    reference = _reference(ctx)
    assert len(merged.rows) == len(reference.rows) == 8
    assert _rows(merged) == _rows(reference)
    assert merged.float_accuracy == reference.float_accuracy
    done = [p.current for p in progress if p.phase == "shard"]
    assert done[-1] == SHARDS and "Docker" in [p for p in progress if p.phase == "shard"][-1].message
    assert any(p.phase == "shard-log" and "sweep worker" in p.message for p in progress), "no log lines streamed"
    assert _sweep_containers(client) == []


@pytest.mark.slow
@pytest.mark.timeout(SWEEP_DEADLINE + 120)
def test_cancel_mid_sweep_leaves_no_container(engine: tuple[Any, str], optimizer: Any) -> None:
    """Cancelling the Optimize call while shard containers run removes every one of them."""
    client, _ = engine
    stub, _, ctx = optimizer
    request = optimizer_pb2.OptimizeRequest(settings=ctx["settings"], shard_count=3)
    call = stub.Optimize(request, timeout=SWEEP_DEADLINE)

    def consume() -> None:
        with contextlib.suppress(grpc.RpcError):  # CANCELLED, once cancelled below
            for _ in call:
                pass

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    started = _wait_for(lambda: [c for c in _sweep_containers(client) if c.status == "running"], 120,
                        "a running shard container")
    labels = started[0].labels
    assert labels[dj.LABEL_COUNT] == "3" and labels[dj.LABEL_TASK].startswith("tasks/sweep/")
    host_config = client.api.inspect_container(started[0].id)["HostConfig"]
    assert host_config["NanoCpus"] == 10**9 and host_config["Memory"] == 2 << 30 and host_config["ReadonlyRootfs"]
    call.cancel()
    consumer.join(30)
    _wait_for(lambda: _sweep_containers(client) == [], 90, "the sweep's containers to be removed")


@pytest.mark.slow
@pytest.mark.timeout(SWEEP_DEADLINE + 120)
def test_killed_shard_is_retried(engine: tuple[Any, str], optimizer: Any,
                                 caplog: pytest.LogCaptureFixture) -> None:
    """SIGKILL of one shard container: the executor starts it again and the table is still the reference's."""
    client, _ = engine
    stub, store, ctx = optimizer
    request = optimizer_pb2.OptimizeRequest(settings=ctx["settings"], shard_count=SHARDS, max_accuracy_drop=1.0)
    outcome: dict[str, Any] = {}

    def consume() -> None:
        try:
            outcome["result"] = _drain(stub.Optimize(request, timeout=SWEEP_DEADLINE))[1]
        except grpc.RpcError as exc:
            outcome["error"] = exc

    caplog.set_level("WARNING", logger=dj.__name__)
    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    victim = _wait_for(lambda: [c for c in _sweep_containers(client)
                                if c.status == "running" and c.labels[dj.LABEL_INDEX] == "1"], 120,
                       "shard 1's container")[0]
    victim.kill()
    consumer.join(SWEEP_DEADLINE)
    assert "error" not in outcome, outcome.get("error")
    assert "result" in outcome, "the sweep did not finish"
    assert any("shard 1 failed" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)
    merged = SweepResult.from_dict(json.loads(store.get_bytes(ref_from_proto(outcome["result"].sweep_json, "s"))))
    assert _rows(merged) == _rows(_reference(ctx))
    assert _sweep_containers(client) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stage_service_in_container(engine: tuple[Any, str], test_image: str, tmp_path: Path) -> None:
    """`spiker serve optimizer` in a read-only container (SDK): grpc health SERVING, stop = exit 0."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    client, _ = engine
    port = _free_port()
    container = client.containers.run(
        test_image, ["serve", "optimizer", "--host", "127.0.0.1", "--port", str(port)], detach=True,
        network_mode="host", read_only=True, tmpfs={"/tmp": "rw"}, cap_drop=["ALL"], user="0:0",
        security_opt=["no-new-privileges"], volumes=_host_binds(), environment={"SPIKER_STORE_DIR": "/tmp/store"},
        labels={"dev.spiker.test": "serve"})
    try:
        def serving() -> bool:
            with contextlib.suppress(grpc.RpcError), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="spiker.v1.OptimizerService"), timeout=2)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
            return False

        _wait_for(serving, 180, f"grpc health SERVING; logs: {container.logs(tail=20)!r}")
        container.stop(timeout=30)
        assert container.wait(timeout=60)["StatusCode"] == 0
    finally:
        container.remove(force=True)


# -- the executor's logic against a test double of the Docker SDK client (fast) ------------------

TASK = "tasks/sweep/0123456789abcdef0123456789abcdef/task.json"
ERRORS = dj.sdk_errors()


class FakeContainer:
    """A container of :class:`FakeClient`: exits with ``code`` after ``polls`` reloads."""

    def __init__(self, client: FakeClient, kwargs: dict[str, Any], code: int | None, polls: int = 1,
                 lines: tuple[str, ...] = ()) -> None:
        self.client, self.kwargs, self.name, self.labels = client, kwargs, kwargs["name"], dict(kwargs["labels"])
        self.code, self.polls, self.lines = code, polls, lines
        self.status, self.attrs = "running", {"State": {"Status": "running", "ExitCode": 0}}

    def reload(self) -> None:
        if self not in self.client.alive:
            raise ERRORS.NotFound("gone")
        self.polls -= 1
        if self.code is not None and self.polls <= 0:
            self.status = "exited"
            self.attrs = {"State": {"Status": "exited", "ExitCode": self.code}}

    def logs(self, stream: bool = False, follow: bool = False, tail: int | None = None) -> Any:
        data = "".join(line + "\n" for line in self.lines).encode()
        return iter([data]) if stream else data

    def remove(self, force: bool = False) -> None:
        if self not in self.client.alive:
            raise ERRORS.NotFound("gone")
        self.client.alive.remove(self)


class FakeClient:
    """``containers.run/list/get`` and ``images.get`` of the Docker SDK; ``plan(index, attempt)``
    gives (exit code or None = runs forever, log lines) of each started container."""

    def __init__(self, plan: Any = None, images: tuple[str, ...] = ("spiker:test",)) -> None:
        self.plan = plan or (lambda index, attempt: (0, (f"sweep worker: shard {index}",)))
        self.alive: list[FakeContainer] = []
        self.started: list[dict[str, Any]] = []
        self.image_names = images
        self.containers, self.images = self, self

    def run(self, **kwargs: Any) -> FakeContainer:
        self.started.append(kwargs)
        labels = kwargs["labels"]
        code, lines = self.plan(int(labels[dj.LABEL_INDEX]), int(labels[dj.LABEL_ATTEMPT]))
        container = FakeContainer(self, kwargs, code, lines=lines)
        self.alive.append(container)
        return container

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:  # noqa: A002
        key, _, value = (filters or {}).get("label", "").partition("=")
        return [c for c in self.alive if not key or (key in c.labels and (not value or c.labels[key] == value))]

    def get(self, name: str) -> Any:
        if name in self.image_names:
            return name
        for c in self.alive:
            if c.name == name:
                return c
        raise ERRORS.ImageNotFound(name)


def _executor(client: FakeClient, **kwargs: Any) -> dj.DockerSweepExecutor:
    return dj.DockerSweepExecutor("spiker:test", client, store_env={"SPIKER_STORE_DIR": "/srv/store",
                                                                    "SPIKER_S3_ENDPOINT": "", "PYTHONPATH": "/x"},
                                  poll_seconds=0.0, **kwargs)


def test_shard_container_spec() -> None:
    """The Job's command line and index variable, limits, labels, hardening, the store bind-mounted."""
    kw = dj.build_shard_container(TASK, 2, 4, "img:1", store_env={"SPIKER_STORE_DIR": "/srv/store",
                                                                  "PYTHONPATH": "/host"}, cpus=1.5, memory="512m")
    assert kw["entrypoint"] == ["spiker"] and kw["command"] == ["worker", "sweep", "--task", TASK, "--count", "4"]
    env = kw["environment"]
    assert env["JOB_COMPLETION_INDEX"] == "2" and env["TASK_KEY"] == TASK and "PYTHONPATH" not in env
    assert env["OMP_NUM_THREADS"] == "1" and env["SPIKER_STORE_DIR"] == "/srv/store"
    assert kw["nano_cpus"] == 1_500_000_000 and kw["mem_limit"] == 512 << 20
    assert kw["volumes"] == {"/srv/store": {"bind": "/srv/store", "mode": "rw"}}
    assert kw["read_only"] and kw["cap_drop"] == ["ALL"] and "/tmp" in kw["tmpfs"]
    assert kw["labels"][dj.LABEL_SWEEP] == kw["name"].rsplit("-", 2)[0] == "spiker-sweep-0123456789ab-of-4"
    assert (kw["labels"][dj.LABEL_INDEX], kw["labels"][dj.LABEL_ATTEMPT]) == ("2", "1")
    s3 = dj.build_shard_container(TASK, 0, 1, store_env={"SPIKER_S3_ENDPOINT": "127.0.0.1:8333",
                                                         "SPIKER_S3_SECRET_KEY": "k"})
    assert s3["volumes"] == {} and s3["environment"]["SPIKER_S3_SECRET_KEY"] == "k"
    assert s3["network_mode"] == "host"


def test_settings_from_env_and_bad_values() -> None:
    """SPIKER_SWEEP_* reach the executor; malformed limits and volumes are one-line errors."""
    ex = dj.DockerSweepExecutor.from_env({}, env={
        "SPIKER_SWEEP_IMAGE": "lab/spiker:2", "SPIKER_SWEEP_DOCKER_CPUS": "0.5", "SPIKER_SWEEP_DOCKER_MEMORY": "1g",
        "SPIKER_SWEEP_DOCKER_VOLUMES": "/a:/b:ro,/c:/d", "SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX": "0",
        "SPIKER_SWEEP_PARALLELISM": "2", "SPIKER_SWEEP_DOCKER_NETWORK": "spiker_backend"}, client=FakeClient())
    assert (ex.image, ex.cpus, ex.memory, ex.retries, ex.parallelism, ex.network) == (
        "lab/spiker:2", 0.5, 1 << 30, 0, 2, "spiker_backend")
    assert ex.volumes == {"/a": {"bind": "/b", "mode": "ro"}, "/c": {"bind": "/d", "mode": "rw"}}
    with pytest.raises(ValueError, match="HOST:CONTAINER"):
        dj.parse_volumes("/a")
    with pytest.raises(ValueError, match="512m or 4g"):
        dj.parse_memory("lots")


def test_run_streams_logs_and_removes_containers() -> None:
    """Every shard exits 0: result keys in index order, log lines passed on, no container left."""
    client, lines, states = FakeClient(), [], []
    result = _executor(client).run(TASK, 3, on_log=lambda i, line: lines.append((i, line)),
                                   progress=lambda s: states.append(len(s.succeeded)))
    assert result.shard_keys == [shard_key(TASK, i, 3) for i in range(3)] and result.retried == 0
    assert states[-1] == 3 and client.alive == []
    _wait_for(lambda: len(lines) == 3, 5, "log lines")
    assert sorted(lines) == [(i, f"sweep worker: shard {i}") for i in range(3)]


def test_failed_shard_is_retried_then_gives_up() -> None:
    """A shard that fails once is started again (attempt 2); one that always fails ends the sweep."""
    client = FakeClient(lambda i, a: (1 if (i, a) == (1, 1) else 0, ()))
    result = _executor(client, retries=2).run(TASK, 3)
    assert result.retried == 1 and client.alive == []
    assert [(k["labels"][dj.LABEL_INDEX], k["labels"][dj.LABEL_ATTEMPT]) for k in client.started].count(("1", "2")) == 1

    err = 'spiker-error: {"code": "INVALID_ARGUMENT", "reason": "DATA_ERROR", "message": "bad npz"}'
    client = FakeClient(lambda i, a: (2, (err,)) if i == 0 else (None, ()))
    with pytest.raises(dj.DockerSweepError, match=r"shard 0 of 2 failed 2 time\(s\) \(last: exit 2: bad npz\)") as info:
        _executor(client, retries=1).run(TASK, 2)
    assert info.value.failed == [0] and client.alive == []  # the still-running shard 1 is removed too
    assert describe_error(info.value).code == "FAILED_PRECONDITION"


def test_cancel_and_timeout_remove_containers() -> None:
    """Cancellation and the sweep timeout remove every container of the sweep."""
    client, cancel = FakeClient(lambda i, a: (None, ())), threading.Event()
    with pytest.raises(dj.DockerSweepError, match="cancelled") as info:
        _executor(client).run(TASK, 2, cancel=cancel, progress=lambda s: cancel.set())
    assert info.value.reason == "Cancelled" and client.alive == []
    with pytest.raises(dj.DockerSweepError, match="did not finish within"):
        _executor(client, timeout_seconds=0.05).run(TASK, 2)
    assert client.alive == []


def test_restarted_optimizer_adopts_containers() -> None:
    """Containers of the same sweep found by label: a finished one counts, a running one is watched."""
    client = FakeClient()
    ex = _executor(client)
    for index, code in ((0, 0), (1, None)):
        c = client.run(**ex.build(TASK, index, 3, attempt=1))
        c.code, c.polls = code, 0 if code == 0 else 2
        if code == 0:
            c.reload()
    client.alive[1].code = 0
    client.started.clear()
    result = ex.run(TASK, 3)
    assert result.adopted == 2 and [k["labels"][dj.LABEL_INDEX] for k in client.started] == ["2"]
    assert client.alive == []


def test_missing_image_and_unreachable_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """No image on the engine, or no engine at all: a one-line FAILED_PRECONDITION error."""
    with pytest.raises(dj.DockerEngineUnavailable, match="not on the Docker engine"):
        dj.DockerSweepExecutor("nope:1", FakeClient(), store_env={}).run(TASK, 1)
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(dj.DockerEngineUnavailable) as info:
        dj.DockerSweepExecutor.connect(timeout=5)
    message = str(info.value)
    assert "\n" not in message and message.startswith("Docker engine unreachable at unix:///nonexistent")
    assert describe_error(info.value).code == "FAILED_PRECONDITION"


def test_optimizer_service_reports_unreachable_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPIKER_SWEEP_EXECUTOR=docker without an engine: Optimize ends FAILED_PRECONDITION, one line."""
    pytest.importorskip("docker")
    monkeypatch.setenv("SPIKER_SWEEP_EXECUTOR", "docker")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    store = LocalStore(tmp_path / "store")
    server = build_stage_server(["optimizer"], Runtime(store, work_root=tmp_path / "work"), port=0)
    try:
        model = store.put_file(NetBuilder(NET).build(seed=0).save(tmp_path / "m.pt"), kind="checkpoint")
        settings = optimizer_pb2.SweepSettings(
            model=ref_to_proto(model), dataset=common_pb2.DatasetSpec(
                npz=ref_to_proto(store.put_bytes(_npz(), kind="dataset")), **DATASET),
            ranges=common_pb2.OptimRanges(**{k: common_pb2.BitRange(min=v["min"], max=v["max"])
                                             for k, v in RANGES.items()}))
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                _drain(stub.Optimize(optimizer_pb2.OptimizeRequest(settings=settings, shard_count=2), timeout=60))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Docker engine unreachable" in info.value.details() and "\n" not in info.value.details()
    finally:
        server.stop(0).wait(10)


def test_engine_lost_mid_sweep_is_one_line() -> None:
    """The engine going away while shards run: DockerEngineUnavailable (FAILED_PRECONDITION), one line."""
    client = FakeClient(lambda i, a: (None, ()))

    def lost(self: FakeContainer) -> None:
        raise ConnectionError("Connection aborted.\nFileNotFoundError(2, 'No such file or directory')")

    ex = _executor(client)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FakeContainer, "reload", lost)
        with pytest.raises(dj.DockerEngineUnavailable, match="Docker engine error during sweep") as info:
            ex.run(TASK, 2)
    assert "\n" not in str(info.value) and describe_error(info.value).code == "FAILED_PRECONDITION"
