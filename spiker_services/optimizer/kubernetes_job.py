"""The bit-width sweep as a Kubernetes Indexed Job: the Job object, and an executor that runs it.

One function, :func:`build_sweep_job`, builds the ``batch/v1`` Job that runs the sweep worker
(``spiker worker sweep --task KEY --count N``, shard index from ``JOB_COMPLETION_INDEX``) with
one shard per completion index. The executor submits exactly that object, and the template
committed in ``deploy/k8s/base/sweep-job.yaml`` is rendered from it::

    python -m spiker_services.optimizer.kubernetes_job --render > deploy/k8s/base/sweep-job.yaml

so the two cannot drift (a test compares them). A concrete Job for one task::

    python -m spiker_services.optimizer.kubernetes_job --task tasks/sweep/<id>/task.json --count 8 \\
        --image spiker:0.1.0 --namespace spiker | kubectl create -f -

:class:`KubernetesSweepExecutor` (``SPIKER_SWEEP_EXECUTOR=kubernetes``) creates the Job through
the ``kubernetes`` Python client (imported only when the executor is used), watches it until
every index has succeeded or failed, and returns the shard indexes and result keys; a failed
index, a failed Job, a timeout or a cancellation raises :class:`SweepJobError`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: image the template and the executor use when none is configured (deploy/docker/Dockerfile)
DEFAULT_IMAGE = "spiker:0.1.0"
#: ConfigMap with the non-secret settings (SPIKER_S3_ENDPOINT, SPIKER_S3_BUCKET, ...), deploy/k8s/base
DEFAULT_CONFIGMAP = "spiker-config"
#: Secret holding the S3 keys under ``access-key`` / ``secret-key``, deploy/k8s/base
DEFAULT_S3_SECRET = "spiker-s3"
#: labels every object of the stack carries; the MinIO NetworkPolicy admits pods with ``part-of``
PART_OF = {"app.kubernetes.io/part-of": "spiker"}
#: task key and name used by the committed template (deploy/k8s/base/sweep-job.yaml)
TEMPLATE_TASK_KEY = "tasks/sweep/REPLACE_WITH_TASK_ID/task.json"
TEMPLATE_NAME = "spiker-sweep"
TEMPLATE_COUNT = 4
#: the worker runs as this user (the image's non-root user, deploy/docker/Dockerfile)
RUN_AS_USER = 10001
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1", "memory": "1Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
#: Kubernetes names: DNS-1123 labels (a Job name also becomes a pod label value: <= 63)
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TASK_ID_RE = re.compile(r"^tasks/sweep/([0-9a-f]{8,})/task\.json$")


def container_security_context() -> dict[str, Any]:
    """The securityContext every spiker container gets (same as the Deployments in deploy/k8s/base)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    """The pod-level securityContext of spiker pods."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def sweep_job_name(task_key: str, count: int) -> str:
    """A stable Job name for shard count ``count`` of the task at ``task_key``.

    The same task and count always get the same name, so a resubmission finds the Job that is
    already there instead of starting the sweep twice.
    """
    match = _TASK_ID_RE.match(task_key)
    ident = match.group(1)[:12] if match else hashlib.sha256(task_key.encode()).hexdigest()[:12]
    return f"spiker-sweep-{ident}-of-{count}"


def build_sweep_job(task_key: str, count: int, image: str = DEFAULT_IMAGE, *, name: str | None = None,
                    namespace: str | None = None, parallelism: int | None = None,
                    backoff_limit_per_index: int = 2, max_failed_indexes: int | None = None,
                    ttl_seconds_after_finished: int = 3600, active_deadline_seconds: int | None = None,
                    configmap: str = DEFAULT_CONFIGMAP, s3_secret: str = DEFAULT_S3_SECRET,
                    resources: dict[str, dict[str, str]] | None = None,
                    image_pull_policy: str = "IfNotPresent", service_account: str | None = None,
                    labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``batch/v1`` Indexed Job that scores the ``count`` shards of the sweep task at ``task_key``.

    Index ``i`` runs ``spiker worker sweep --task $(TASK_KEY) --count N`` with
    ``JOB_COMPLETION_INDEX=i`` (set by Kubernetes), reads the task from the store and writes
    ``tasks/sweep/<id>/shards/of-N/i.json``. ``completions`` is the shard count;
    ``parallelism`` defaults to it (every shard at once). Each index is retried up to
    ``backoff_limit_per_index`` times on its own; pods evicted by a disruption do not count.
    The store settings come from ConfigMap ``configmap`` and the keys from Secret ``s3_secret``
    (keys ``access-key``, ``secret-key``): the Job holds references, never values.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    if parallelism is not None and not 1 <= parallelism <= count:
        raise ValueError(f"parallelism must be in 1..{count}, got {parallelism!r}")
    if backoff_limit_per_index < 0:
        raise ValueError(f"backoff_limit_per_index must be >= 0, got {backoff_limit_per_index}")
    if max_failed_indexes is not None and not 0 <= max_failed_indexes <= count:
        raise ValueError(f"max_failed_indexes must be in 0..{count}, got {max_failed_indexes}")
    if not task_key or task_key.strip() != task_key:
        raise ValueError(f"task_key must be a non-empty store key, got {task_key!r}")
    if not image:
        raise ValueError("image must be given")
    job_name = name or sweep_job_name(task_key, count)
    if len(job_name) > 63 or not _NAME_RE.match(job_name):
        raise ValueError(f"Job name {job_name!r} is not a DNS-1123 label of at most 63 characters")

    meta_labels = {"app.kubernetes.io/name": "spiker-sweep", "app.kubernetes.io/component": "sweep-worker",
                   **PART_OF, **(labels or {})}
    metadata: dict[str, Any] = {"name": job_name, "labels": dict(meta_labels),
                                "annotations": {"spiker.dev/task-key": task_key, "spiker.dev/shard-count": str(count)}}
    if namespace:
        metadata["namespace"] = namespace

    def secret_env(var: str, key: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": s3_secret, "key": key}}}

    container: dict[str, Any] = {
        "name": "worker",
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "command": ["spiker"],
        "args": ["worker", "sweep", "--task", "$(TASK_KEY)", "--count", str(count)],
        "env": [
            {"name": "TASK_KEY", "value": task_key},
            secret_env("SPIKER_S3_ACCESS_KEY", "access-key"),
            secret_env("SPIKER_S3_SECRET_KEY", "secret-key"),
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        ],
        "envFrom": [{"configMapRef": {"name": configmap}}],
        "resources": resources if resources is not None else {k: dict(v) for k, v in DEFAULT_RESOURCES.items()},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": count,
        "parallelism": parallelism or count,
        "backoffLimitPerIndex": backoff_limit_per_index,
        "ttlSecondsAfterFinished": ttl_seconds_after_finished,
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]},
        "template": {"metadata": {"labels": dict(meta_labels)}, "spec": pod_spec},
    }
    if max_failed_indexes is not None:
        spec["maxFailedIndexes"] = max_failed_indexes
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def render_template() -> str:
    """The YAML committed as ``deploy/k8s/base/sweep-job.yaml`` (a header comment, then the Job)."""
    import yaml

    job = build_sweep_job(TEMPLATE_TASK_KEY, TEMPLATE_COUNT, DEFAULT_IMAGE, name=TEMPLATE_NAME)
    header = (
        "# GENERATED by `python -m spiker_services.optimizer.kubernetes_job --render`; do not edit by hand\n"
        "# (tests/deploy checks it equals build_sweep_job()). A template, not part of kustomization.yaml:\n"
        "# one sweep = one Job. Set TASK_KEY to the task's store key and completions, parallelism and\n"
        "# --count to the shard count, or generate a concrete Job instead:\n"
        "#   python -m spiker_services.optimizer.kubernetes_job --task KEY --count N --image IMG --namespace NS\n"
    )
    return header + yaml.safe_dump(job, sort_keys=False, default_flow_style=False)


# -- executor ----------------------------------------------------------------------------------


class SweepJobError(RuntimeError):
    """A sweep Job failed, timed out or was cancelled; ``failed`` holds the failed shard indexes."""

    def __init__(self, message: str, *, job: str = "", failed: Iterable[int] = (), reason: str = "") -> None:
        super().__init__(message)
        self.job = job
        self.failed = sorted(failed)
        self.reason = reason


@dataclass
class SweepJobStatus:
    """The state of a sweep Job as read from its ``status``: which indexes succeeded or failed."""

    name: str
    namespace: str
    count: int
    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    active: int = 0
    condition: str = ""  # "Complete", "Failed" or "" while running
    reason: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        """True when the Job reached Complete or Failed, or every index has succeeded or failed."""
        return bool(self.condition) or len(self.succeeded) + len(self.failed) >= self.count


@dataclass
class SweepJobResult:
    """A completed sweep Job: its name and the store keys of the shard results, in index order."""

    name: str
    namespace: str
    count: int
    succeeded: list[int]
    shard_keys: list[str]
    seconds: float


def parse_indexes(text: str | None) -> list[int]:
    """Parse Kubernetes' index-interval notation (``"0-2,5,7-8"``) into a sorted list of ints."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return sorted(out)


def job_status(job: dict[str, Any], count: int | None = None) -> SweepJobStatus:
    """Read a Job (camelCase dict, as the API serialises it) into a :class:`SweepJobStatus`."""
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    total = count if count is not None else int(spec.get("completions") or 0)
    out = SweepJobStatus(name=meta.get("name", ""), namespace=meta.get("namespace", ""), count=total,
                         succeeded=parse_indexes(status.get("completedIndexes")),
                         failed=parse_indexes(status.get("failedIndexes")), active=int(status.get("active") or 0))
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and str(cond.get("status")) == "True":
            out.condition = cond["type"]
            out.reason = cond.get("reason") or ""
            out.message = cond.get("message") or ""
    return out


def api_dict(obj: Any) -> dict[str, Any]:
    """A Kubernetes object from the client (e.g. a V1Job model) or a plain dict, as the API's camelCase dict."""
    if isinstance(obj, dict):
        return obj
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


class KubernetesSweepExecutor:
    """Runs a sweep as an Indexed Job (:func:`build_sweep_job`) and waits for every shard.

    ``batch_api``/``core_api``/``watch_factory`` default to the ``kubernetes`` client's
    ``BatchV1Api``/``CoreV1Api``/``watch.Watch`` with in-cluster config (else ~/.kube/config);
    tests pass doubles. ``job_options`` are extra keyword arguments of :func:`build_sweep_job`.
    """

    def __init__(self, image: str = DEFAULT_IMAGE, namespace: str = "default", *, batch_api: Any = None,
                 core_api: Any = None, watch_factory: Callable[[], Any] | None = None,
                 watch_seconds: int = 30, timeout_seconds: float | None = None,
                 delete_on_failure: bool = False, job_options: dict[str, Any] | None = None) -> None:
        self.image = image
        self.namespace = namespace
        self.watch_seconds = watch_seconds
        self.timeout_seconds = timeout_seconds
        self.delete_on_failure = delete_on_failure
        self.job_options = dict(job_options or {})
        if batch_api is None or (core_api is None and watch_factory is None):
            batch_api, core_api, watch_factory = self._client(batch_api, core_api, watch_factory)
        self.batch = batch_api
        self.core = core_api
        self.watch_factory = watch_factory

    @staticmethod
    def _client(batch_api: Any, core_api: Any, watch_factory: Any) -> tuple[Any, Any, Any]:
        try:
            from kubernetes import client, config, watch
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("SPIKER_SWEEP_EXECUTOR=kubernetes needs the 'kubernetes' package "
                               "(pip install 'spiker[k8s]')") from exc
        if batch_api is None or core_api is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
        return (batch_api or client.BatchV1Api(), core_api or client.CoreV1Api(), watch_factory or watch.Watch)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **kwargs: Any) -> KubernetesSweepExecutor:
        """An executor configured from ``SPIKER_SWEEP_IMAGE``, ``SPIKER_SWEEP_NAMESPACE`` (else the pod's
        namespace from the service-account mount, else ``default``), ``SPIKER_SWEEP_TIMEOUT`` (seconds),
        ``SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX``, ``SPIKER_SWEEP_PARALLELISM``, ``SPIKER_SWEEP_CONFIGMAP``,
        ``SPIKER_SWEEP_S3_SECRET`` and ``SPIKER_SWEEP_TTL_SECONDS``."""
        env = dict(os.environ if env is None else env)
        namespace = env.get("SPIKER_SWEEP_NAMESPACE", "").strip()
        if not namespace:
            ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
            namespace = open(ns_file).read().strip() if os.path.exists(ns_file) else "default"
        options: dict[str, Any] = dict(kwargs.pop("job_options", {}) or {})
        for var, key in (("SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX", "backoff_limit_per_index"),
                         ("SPIKER_SWEEP_PARALLELISM", "parallelism"),
                         ("SPIKER_SWEEP_TTL_SECONDS", "ttl_seconds_after_finished")):
            if env.get(var, "").strip():
                options[key] = int(env[var])
        for var, key in (("SPIKER_SWEEP_CONFIGMAP", "configmap"), ("SPIKER_SWEEP_S3_SECRET", "s3_secret")):
            if env.get(var, "").strip():
                options[key] = env[var].strip()
        timeout = float(env["SPIKER_SWEEP_TIMEOUT"]) if env.get("SPIKER_SWEEP_TIMEOUT", "").strip() else None
        return cls(env.get("SPIKER_SWEEP_IMAGE", "").strip() or DEFAULT_IMAGE, namespace,
                   timeout_seconds=timeout, job_options=options, **kwargs)

    def build(self, task_key: str, count: int) -> dict[str, Any]:
        """The Job this executor submits for ``count`` shards of ``task_key``."""
        options = dict(self.job_options)
        if options.get("parallelism") is not None:
            options["parallelism"] = min(int(options["parallelism"]), count)
        return build_sweep_job(task_key, count, self.image, namespace=self.namespace, **options)

    def submit(self, task_key: str, count: int) -> str:
        """Create the Job (an existing Job of the same task and count is reused); returns its name."""
        body = self.build(task_key, count)
        name = body["metadata"]["name"]
        try:
            self.batch.create_namespaced_job(self.namespace, body)
            log.info("sweep: created Job %s/%s (%d shards of %s)", self.namespace, name, count, task_key)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise
            log.info("sweep: Job %s/%s already exists; watching it", self.namespace, name)
        return name

    def _events(self, name: str) -> Iterator[dict[str, Any]]:
        """Job objects of ``name`` as the watch reports them (one watch period, then returns)."""
        watcher = self.watch_factory()
        try:
            for event in watcher.stream(self.batch.list_namespaced_job, self.namespace,
                                        field_selector=f"metadata.name={name}", timeout_seconds=self.watch_seconds):
                if event.get("type") == "DELETED":
                    raise SweepJobError(f"sweep Job {self.namespace}/{name} was deleted before it finished",
                                        job=name, reason="Deleted")
                yield api_dict(event["object"])
        finally:
            watcher.stop()

    def wait(self, name: str, count: int, *, progress: Callable[[SweepJobStatus], None] | None = None,
             cancel: threading.Event | None = None) -> SweepJobStatus:
        """Watch Job ``name`` until every index succeeded (returned) or it failed (raises SweepJobError)."""
        deadline = None if self.timeout_seconds is None else time.monotonic() + self.timeout_seconds
        last: tuple[int, int] | None = None
        while True:
            if cancel is not None and cancel.is_set():
                self.delete(name)
                raise SweepJobError(f"sweep Job {self.namespace}/{name} cancelled (deleted)", job=name,
                                    reason="Cancelled")
            if deadline is not None and time.monotonic() > deadline:
                self.delete(name)
                raise SweepJobError(f"sweep Job {self.namespace}/{name} did not finish within "
                                    f"{self.timeout_seconds:g} s (deleted)", job=name, reason="Timeout")
            for job in self._events(name):
                state = job_status(job, count)
                if progress is not None and (len(state.succeeded), len(state.failed)) != last:
                    last = (len(state.succeeded), len(state.failed))
                    progress(state)
                if state.finished:
                    return self._finish(state)
                if (cancel is not None and cancel.is_set()) or (deadline is not None and time.monotonic() > deadline):
                    break

    def _finish(self, state: SweepJobStatus) -> SweepJobStatus:
        if state.condition != "Failed" and not state.failed and len(state.succeeded) >= state.count:
            return state
        missing = sorted(set(range(state.count)) - set(state.succeeded))
        failed = state.failed or missing
        selector = f"job-name={state.name}"
        detail = self._failure_logs(state.name, failed)
        message = (f"sweep Job {self.namespace}/{state.name} failed: shard index(es) "
                   f"{','.join(map(str, failed))} of {state.count} did not succeed"
                   f"{f' ({state.reason}: {state.message})' if state.reason or state.message else ''}; "
                   f"see `kubectl logs -n {self.namespace} -l {selector}`{detail}")
        if self.delete_on_failure:
            self.delete(state.name)
        raise SweepJobError(message, job=state.name, failed=failed, reason=state.reason or "Failed")

    def _failure_logs(self, name: str, failed: list[int], lines: int = 5) -> str:
        """The last log lines of one failed pod per failed index (best effort, for the error message)."""
        if self.core is None:
            return ""
        out = []
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
            for pod in getattr(pods, "items", None) or []:
                pod = api_dict(pod)
                labels = (pod.get("metadata") or {}).get("labels") or {}
                index = labels.get("batch.kubernetes.io/job-completion-index")
                if index is None or int(index) not in failed or (pod.get("status") or {}).get("phase") != "Failed":
                    continue
                tail = self.core.read_namespaced_pod_log(pod["metadata"]["name"], self.namespace, tail_lines=lines)
                out.append(f"\n  index {index}: {str(tail).strip()}")
                failed = [i for i in failed if i != int(index)]
        except Exception as exc:  # noqa: BLE001 - logs are a courtesy; the failure itself is reported
            log.debug("sweep: could not read pod logs of %s: %s", name, exc)
        return "".join(out)

    def delete(self, name: str) -> None:
        """Delete Job ``name`` and its pods (a missing Job is not an error)."""
        try:
            self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def run(self, task_key: str, count: int, *, progress: Callable[[SweepJobStatus], None] | None = None,
            cancel: threading.Event | None = None) -> SweepJobResult:
        """Submit the sweep Job for ``count`` shards of ``task_key``, wait, return the shard result keys."""
        from spiker_services.optimizer.task import shard_key

        started = time.monotonic()
        name = self.submit(task_key, count)
        state = self.wait(name, count, progress=progress, cancel=cancel)
        return SweepJobResult(name=name, namespace=self.namespace, count=count, succeeded=state.succeeded,
                              shard_keys=[shard_key(task_key, i, count) for i in range(count)],
                              seconds=time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    """``python -m spiker_services.optimizer.kubernetes_job``: print the template (--render) or a concrete Job."""
    import yaml

    parser = argparse.ArgumentParser(description="Render the sweep Indexed Job (deploy/k8s/base/sweep-job.yaml).")
    parser.add_argument("--render", action="store_true", help="print the committed template")
    parser.add_argument("--task", help="store key of the sweep task (tasks/sweep/<id>/task.json)")
    parser.add_argument("--count", type=int, help="shard count = completions = parallelism")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"container image (default {DEFAULT_IMAGE})")
    parser.add_argument("--namespace", default=None, help="namespace of the Job")
    parser.add_argument("--name", default=None, help="Job name (default derived from task and count)")
    parser.add_argument("--parallelism", type=int, default=None, help="pods at once (default: count)")
    parser.add_argument("--backoff-limit-per-index", type=int, default=2, help="retries of one index (default 2)")
    args = parser.parse_args(argv)
    if args.render:
        sys.stdout.write(render_template())
        return 0
    if not args.task or not args.count:
        parser.error("give --render, or --task and --count")
    try:
        job = build_sweep_job(args.task, args.count, args.image, name=args.name, namespace=args.namespace,
                              parallelism=args.parallelism, backoff_limit_per_index=args.backoff_limit_per_index)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(yaml.safe_dump(job, sort_keys=False, default_flow_style=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
