"""The bit-width sweep as containers on one Docker host, through the Docker SDK for Python.

:class:`DockerSweepExecutor` (``SPIKER_SWEEP_EXECUTOR=docker``) runs each of the N shards of a
sweep task as one container of the project image with the same entry point and store contract
as the Kubernetes Indexed Job (:mod:`spiker_services.optimizer.kubernetes_job`): ``spiker worker sweep
--task $TASK_KEY --count N`` with ``JOB_COMPLETION_INDEX=i``; shard ``i`` reads the task from the
store and writes ``tasks/sweep/<id>/shards/of-N/i.json``. Per container: CPU (``nano_cpus``) and
memory (``mem_limit``) limits, read-only root with a tmpfs ``/tmp``, no capabilities, labels
naming the sweep, task, shard and attempt. A failed shard is started again up to
``retries`` times; the containers' log lines are passed to a callback as they come; a cancelled
or timed-out sweep removes its containers. A restarted optimizer that is asked for the same
sweep finds its containers by label and adopts them (running ones are watched, ones that exited
0 count as done) instead of starting the shards twice.

The store must be reachable from the containers: an S3 endpoint (on loopback with the default
host networking, or on ``SPIKER_SWEEP_DOCKER_NETWORK``), or a local store directory, which is
bind-mounted read-write at the same path. The ``docker`` package is imported only when the
executor is used (``pip install 'spiker[docker]'``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spiker.errors import ToolError
from spiker_services.optimizer.kubernetes_job import DEFAULT_IMAGE, PART_OF, sweep_job_name

log = logging.getLogger(__name__)

#: label keys on every shard container (the values are strings)
LABEL_SWEEP = "dev.spiker.sweep"
LABEL_TASK = "dev.spiker.task-key"
LABEL_INDEX = "dev.spiker.shard-index"
LABEL_COUNT = "dev.spiker.shard-count"
LABEL_ATTEMPT = "dev.spiker.attempt"
#: reads of a container list while containers come and go (the SDK inspects each one it lists)
LIST_RETRIES = 5
COMPONENT = {"app.kubernetes.io/component": "sweep-worker"}
#: per-container limits when none are configured (the Kubernetes Job's limits: 2 CPU, 4 GiB)
DEFAULT_CPUS = 2.0
DEFAULT_MEMORY = "4g"
#: store settings passed into the containers (nothing else of the service's environment is)
_STORE_VARS = ("SPIKER_S3_", "SPIKER_STORE_DIR")


class DockerEngineUnavailable(ToolError):
    """The Docker engine cannot be reached, or the image is not on it (FAILED_PRECONDITION)."""


class DockerSweepError(ToolError):
    """A shard failed more often than its retries allow, or the sweep timed out or was cancelled."""

    def __init__(self, message: str, *, sweep: str = "", failed: list[int] | None = None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.sweep = sweep
        self.failed = sorted(failed or [])
        self.reason = reason


@dataclass
class DockerSweepStatus:
    """Where a sweep stands: shards done, running, and how many attempts each has used."""

    name: str
    count: int
    succeeded: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)

    @property
    def retried(self) -> int:
        """Attempts beyond the first, over all shards."""
        return sum(max(0, a - 1) for a in self.attempts.values())


@dataclass
class DockerSweepResult:
    """A completed sweep: the shard result keys in index order, and how often shards were retried."""

    name: str
    count: int
    shard_keys: list[str]
    retried: int
    adopted: int
    seconds: float


def parse_volumes(text: str) -> dict[str, dict[str, str]]:
    """``HOST:CONTAINER[:ro|rw],...`` (``SPIKER_SWEEP_DOCKER_VOLUMES``) as the SDK's ``volumes`` dict."""
    out: dict[str, dict[str, str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        bits = part.split(":")
        if len(bits) not in (2, 3) or not bits[0] or not bits[1] or (len(bits) == 3 and bits[2] not in ("ro", "rw")):
            raise ValueError(f"SPIKER_SWEEP_DOCKER_VOLUMES: {part!r} is not HOST:CONTAINER[:ro|rw]")
        out[bits[0]] = {"bind": bits[1], "mode": bits[2] if len(bits) == 3 else "rw"}
    return out


def parse_memory(text: str) -> int:
    """``512m``, ``4g``, ``1073741824`` as bytes."""
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(raw[-1:], 1)
    try:
        value = float(raw[:-1] if scale > 1 else raw)
    except ValueError:
        raise ValueError(f"memory limit must be like 512m or 4g, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"memory limit must be > 0, got {text!r}")
    return int(value * scale)


def container_store_env(store_env: Mapping[str, str]) -> dict[str, str]:
    """The store settings of ``store_env`` that the containers get (``SPIKER_S3_*``, ``SPIKER_STORE_DIR``)."""
    return {k: v for k, v in store_env.items() if k.startswith(_STORE_VARS)}


def build_shard_container(task_key: str, index: int, count: int, image: str = DEFAULT_IMAGE, *,
                          store_env: Mapping[str, str], name: str | None = None, attempt: int = 1,
                          cpus: float = DEFAULT_CPUS, memory: int | str = DEFAULT_MEMORY,
                          network: str = "host", user: str | None = None,
                          volumes: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``client.containers.run`` for shard ``index`` of ``count`` of ``task_key``.

    The command is the Kubernetes Job's (``spiker worker sweep --task KEY --count N``, index from
    ``JOB_COMPLETION_INDEX``). A local store directory in ``store_env`` is bind-mounted read-write
    at the same path; the thread count inside follows the CPU limit.
    """
    if not 0 <= index < count:
        raise ValueError(f"need 0 <= index < count, got {index}, {count}")
    if cpus <= 0:
        raise ValueError(f"cpus must be > 0, got {cpus}")
    sweep = name or sweep_job_name(task_key, count)
    env = container_store_env(store_env)
    threads = str(max(1, math.floor(cpus)))
    env.update({"TASK_KEY": task_key, "JOB_COMPLETION_INDEX": str(index), "HOME": "/tmp",
                "MPLCONFIGDIR": "/tmp/matplotlib", "SPIKER_THREADS": threads, "OMP_NUM_THREADS": threads,
                "PYTHONUNBUFFERED": "1"})
    binds = {k: dict(v) for k, v in (volumes or {}).items()}
    store_dir = env.get("SPIKER_STORE_DIR", "")
    if store_dir and not env.get("SPIKER_S3_ENDPOINT"):
        binds[store_dir] = {"bind": store_dir, "mode": "rw"}
    labels = {**PART_OF, **COMPONENT, LABEL_SWEEP: sweep, LABEL_TASK: task_key, LABEL_INDEX: str(index),
              LABEL_COUNT: str(count), LABEL_ATTEMPT: str(attempt)}
    kwargs: dict[str, Any] = {
        "image": image, "entrypoint": ["spiker"],
        "command": ["worker", "sweep", "--task", task_key, "--count", str(count)],
        "name": f"{sweep}-{index}-a{attempt}", "labels": labels, "environment": env,
        "nano_cpus": int(cpus * 1e9), "mem_limit": parse_memory(memory) if isinstance(memory, str) else int(memory),
        "network_mode": network, "read_only": True, "tmpfs": {"/tmp": "rw,size=2g"}, "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"], "volumes": binds, "detach": True,
    }
    if user:
        kwargs["user"] = user
    return kwargs


class DockerSweepExecutor:
    """Runs a sweep's shards as containers on one Docker engine and waits for them (see module doc)."""

    def __init__(self, image: str = DEFAULT_IMAGE, client: Any = None, *, store_env: Mapping[str, str],
                 cpus: float = DEFAULT_CPUS, memory: int | str = DEFAULT_MEMORY, network: str = "host",
                 user: str | None = None, volumes: Mapping[str, Mapping[str, str]] | None = None,
                 parallelism: int | None = None, retries: int = 2, timeout_seconds: float | None = None,
                 poll_seconds: float = 1.0) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if parallelism is not None and parallelism < 1:
            raise ValueError(f"parallelism must be >= 1, got {parallelism}")
        self.image = image
        self.store_env = dict(store_env)
        self.cpus, self.memory, self.network, self.user = cpus, memory, network, user
        self.volumes = dict(volumes or {})
        self.parallelism = parallelism
        self.retries = retries
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.client = client if client is not None else self.connect()
        self._errors = sdk_errors()

    # -- set-up --------------------------------------------------------------------------------
    @staticmethod
    def connect(timeout: float = 30.0) -> Any:
        """``docker.from_env()``, pinged; an unreachable engine raises :class:`DockerEngineUnavailable`."""
        try:
            import docker
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DockerEngineUnavailable("SPIKER_SWEEP_EXECUTOR=docker needs the 'docker' package "
                                          "(pip install 'spiker[docker]')") from exc
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        try:
            client = docker.from_env(timeout=int(timeout))
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise DockerEngineUnavailable(f"Docker engine unreachable at {where} (DOCKER_HOST): {detail}") from None
        return client

    @classmethod
    def from_env(cls, store_env: Mapping[str, str], env: Mapping[str, str] | None = None,
                 **kwargs: Any) -> DockerSweepExecutor:
        """An executor configured from ``SPIKER_SWEEP_IMAGE``, ``SPIKER_SWEEP_DOCKER_CPUS``,
        ``SPIKER_SWEEP_DOCKER_MEMORY``, ``SPIKER_SWEEP_DOCKER_NETWORK`` (default ``host``),
        ``SPIKER_SWEEP_DOCKER_USER``, ``SPIKER_SWEEP_DOCKER_VOLUMES``, ``SPIKER_SWEEP_PARALLELISM``,
        ``SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX`` (retries of a shard) and ``SPIKER_SWEEP_TIMEOUT``."""
        env = dict(os.environ if env is None else env)

        def get(var: str) -> str:
            return env.get(var, "").strip()

        options: dict[str, Any] = {}
        if get("SPIKER_SWEEP_DOCKER_CPUS"):
            options["cpus"] = float(get("SPIKER_SWEEP_DOCKER_CPUS"))
        if get("SPIKER_SWEEP_DOCKER_MEMORY"):
            options["memory"] = parse_memory(get("SPIKER_SWEEP_DOCKER_MEMORY"))
        if get("SPIKER_SWEEP_DOCKER_NETWORK"):
            options["network"] = get("SPIKER_SWEEP_DOCKER_NETWORK")
        if get("SPIKER_SWEEP_DOCKER_USER"):
            options["user"] = get("SPIKER_SWEEP_DOCKER_USER")
        if get("SPIKER_SWEEP_DOCKER_VOLUMES"):
            options["volumes"] = parse_volumes(get("SPIKER_SWEEP_DOCKER_VOLUMES"))
        if get("SPIKER_SWEEP_PARALLELISM"):
            options["parallelism"] = int(get("SPIKER_SWEEP_PARALLELISM"))
        if get("SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX"):
            options["retries"] = int(get("SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX"))
        if get("SPIKER_SWEEP_TIMEOUT"):
            options["timeout_seconds"] = float(get("SPIKER_SWEEP_TIMEOUT"))
        return cls(get("SPIKER_SWEEP_IMAGE") or DEFAULT_IMAGE, store_env=store_env, **{**options, **kwargs})

    def build(self, task_key: str, index: int, count: int, attempt: int = 1) -> dict[str, Any]:
        """The ``containers.run`` keyword arguments of one attempt of one shard."""
        return build_shard_container(task_key, index, count, self.image, store_env=self.store_env,
                                     attempt=attempt, cpus=self.cpus, memory=self.memory, network=self.network,
                                     user=self.user, volumes=self.volumes)

    def check_image(self) -> None:
        """The image must be on the engine (no registry is assumed): else DockerEngineUnavailable."""
        try:
            self.client.images.get(self.image)
        except self._errors.ImageNotFound:
            raise DockerEngineUnavailable(
                f"image {self.image!r} is not on the Docker engine: build it with `docker build -f "
                f"deploy/docker/Dockerfile -t {self.image} .` or set SPIKER_SWEEP_IMAGE") from None
        except self._errors.DockerException as exc:
            raise DockerEngineUnavailable(f"Docker engine error: {str(exc).splitlines()[0][:200]}") from None

    # -- containers ----------------------------------------------------------------------------
    def containers(self, name: str) -> list[Any]:
        """Every container (running or not) of sweep ``name``, found by label."""
        for _ in range(LIST_RETRIES):
            try:
                return list(self.client.containers.list(all=True, filters={"label": f"{LABEL_SWEEP}={name}"}))
            except self._errors.NotFound:  # one was removed between the engine's list and its inspect
                continue
        return list(self.client.containers.list(all=True, filters={"label": f"{LABEL_SWEEP}={name}"}))

    def remove(self, name: str) -> int:
        """Remove every container of sweep ``name`` (killing running ones); returns how many."""
        n = 0
        for container in self.containers(name):
            try:
                container.remove(force=True)
                n += 1
            except self._errors.NotFound:
                pass
            except self._errors.APIError as exc:  # "removal already in progress"
                log.debug("sweep: removing %s: %s", getattr(container, "name", "?"), exc)
        return n

    def _start(self, task_key: str, index: int, count: int, attempt: int) -> Any:
        kwargs = self.build(task_key, index, count, attempt)
        try:
            return self.client.containers.run(**kwargs)
        except self._errors.APIError as exc:
            if getattr(exc, "status_code", None) == 409:  # a container of that name is left over
                self.client.containers.get(kwargs["name"]).remove(force=True)
                return self.client.containers.run(**kwargs)
            raise

    def _follow(self, container: Any, index: int, on_log: Callable[[int, str], None] | None) -> None:
        """Pass the container's log lines to ``on_log`` as they come (a daemon thread per container)."""
        if on_log is None:
            return

        def pump() -> None:
            try:
                for chunk in container.logs(stream=True, follow=True):
                    for line in chunk.decode(errors="replace").splitlines():
                        if line.strip():
                            on_log(index, line)
            except Exception as exc:  # noqa: BLE001 - the container went away; the poll loop sees it
                log.debug("sweep: log stream of shard %d ended: %s", index, exc)

        threading.Thread(target=pump, name=f"sweep-log-{index}", daemon=True).start()

    def _state(self, container: Any) -> tuple[str, int]:
        """(status, exit code) of a container; ("gone", -1) when it was removed under us."""
        try:
            container.reload()
        except self._errors.NotFound:
            return "gone", -1
        state = (getattr(container, "attrs", None) or {}).get("State") or {}
        return str(state.get("Status") or container.status), int(state.get("ExitCode") or 0)

    def _tail(self, container: Any, lines: int = 5) -> str:
        try:
            text = container.logs(tail=lines).decode(errors="replace").strip()
        except Exception:  # noqa: BLE001 - logs are a courtesy for the error message
            return ""
        from spiker_services.common.runtime import WORKER_ERROR_PREFIX

        for line in reversed(text.splitlines()):  # the worker's one-line error when it wrote one
            if line.startswith(WORKER_ERROR_PREFIX):
                import json

                try:
                    return str(json.loads(line[len(WORKER_ERROR_PREFIX):]).get("message", line))
                except ValueError:
                    return line
        return " | ".join(text.splitlines()[-lines:])

    # -- the sweep -----------------------------------------------------------------------------
    def run(self, task_key: str, count: int, *, progress: Callable[[DockerSweepStatus], None] | None = None,
            on_log: Callable[[int, str], None] | None = None,
            cancel: threading.Event | None = None) -> DockerSweepResult:
        """Run (or adopt) the ``count`` shard containers of ``task_key`` until all exited 0.

        Raises :class:`DockerSweepError` when a shard failed ``retries + 1`` times, on timeout and
        on ``cancel``; the sweep's containers are removed in all three cases.
        """
        from spiker_services.optimizer.task import shard_key

        self.check_image()
        started = time.monotonic()
        name = sweep_job_name(task_key, count)
        status = DockerSweepStatus(name=name, count=count)
        running: dict[int, Any] = {}
        adopted = 0
        for container in self.containers(name):  # a restarted optimizer: adopt what is there
            labels = getattr(container, "labels", None) or {}
            index, attempt = int(labels.get(LABEL_INDEX, -1)), int(labels.get(LABEL_ATTEMPT, 1))
            if not 0 <= index < count:
                continue
            status.attempts[index] = max(status.attempts.get(index, 0), attempt)
            state, code = self._state(container)
            if state == "exited" and code == 0 and index not in status.succeeded:
                status.succeeded.append(index)
                container.remove(force=True)
            elif state in ("running", "created", "restarting") and index not in running:
                running[index] = container
                self._follow(container, index, on_log)
            else:
                container.remove(force=True)
                continue
            adopted += 1
        if adopted:
            log.info("sweep %s: adopted %d container(s) (%d shard(s) already done)", name, adopted,
                     len(status.succeeded))
        pending = [i for i in range(count) if i not in status.succeeded and i not in running]
        limit = min(self.parallelism or count, count)
        deadline = None if self.timeout_seconds is None else started + self.timeout_seconds
        last: tuple[int, int, int] | None = None
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise DockerSweepError(f"sweep {name} cancelled (containers removed)", sweep=name,
                                           reason="Cancelled")
                if deadline is not None and time.monotonic() > deadline:
                    raise DockerSweepError(f"sweep {name} did not finish within {self.timeout_seconds:g} s "
                                           "(containers removed)", sweep=name, reason="Timeout")
                while pending and len(running) < limit:
                    index = pending.pop(0)
                    attempt = status.attempts.get(index, 0) + 1
                    status.attempts[index] = attempt
                    running[index] = self._start(task_key, index, count, attempt)
                    log.info("sweep %s: shard %d/%d started (attempt %d)", name, index, count, attempt)
                    self._follow(running[index], index, on_log)
                for index, container in list(running.items()):
                    state, code = self._state(container)
                    if state in ("running", "created", "restarting", "paused"):
                        continue
                    del running[index]
                    if state == "exited" and code == 0:
                        status.succeeded.append(index)
                        container.remove(force=True)
                        continue
                    why = f"exit {code}" if state != "gone" else "container removed"
                    tail = self._tail(container) if state != "gone" else ""
                    if state != "gone":
                        container.remove(force=True)
                    if status.attempts[index] > self.retries:
                        raise DockerSweepError(
                            f"sweep {name}: shard {index} of {count} failed {status.attempts[index]} time(s) "
                            f"(last: {why}{f': {tail}' if tail else ''})", sweep=name, failed=[index],
                            reason="Failed")
                    log.warning("sweep %s: shard %d failed (%s); retrying (%d of %d)", name, index, why,
                                status.attempts[index], self.retries)
                    pending.append(index)
                status.running = sorted(running)
                if progress is not None and (len(status.succeeded), len(running), status.retried) != last:
                    last = (len(status.succeeded), len(running), status.retried)
                    progress(status)
                if len(status.succeeded) >= count:
                    break
                time.sleep(self.poll_seconds)
        except BaseException as exc:
            try:
                self.remove(name)
            except Exception as cleanup:  # noqa: BLE001 - the engine itself is gone; report the first error
                log.warning("sweep %s: could not remove its containers: %s", name, cleanup)
            if isinstance(exc, Exception) and not isinstance(exc, ToolError):
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise DockerEngineUnavailable(f"Docker engine error during sweep {name}: "
                                              f"{type(exc).__name__}: {detail}") from exc
            raise
        keys = [shard_key(task_key, i, count) for i in range(count)]
        return DockerSweepResult(name=name, count=count, shard_keys=keys, retried=status.retried, adopted=adopted,
                                 seconds=time.monotonic() - started)


def sdk_errors() -> Any:
    """``docker.errors`` (or stand-ins when the package is absent, for test doubles)."""
    try:
        from docker import errors
    except ImportError:  # pragma: no cover - only test doubles run without the package
        class _Errors:
            class DockerException(Exception):
                pass

            class APIError(DockerException):
                status_code: int | None = None

            class NotFound(APIError):
                pass

            class ImageNotFound(NotFound):
                pass

        return _Errors
    return errors
