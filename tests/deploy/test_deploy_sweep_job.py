"""The sweep Indexed Job: one builder for the executor and the committed template, schema-valid,
and the executor's submit/watch/fail/cancel logic against test doubles of the Kubernetes API."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
import yaml
from deploy_helpers import K8S_BASE, K8S_VERSION, REPO, containers

from spiker_services.optimizer import kubernetes_job as kj
from spiker_services.optimizer.task import shard_key

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")

TASK = "tasks/sweep/0123456789abcdef0123456789abcdef/task.json"


def test_committed_template_equals_the_builder() -> None:
    """deploy/k8s/base/sweep-job.yaml is exactly `--render` (regenerate it if this fails)."""
    committed = (K8S_BASE / "sweep-job.yaml").read_text()
    assert committed == kj.render_template(), (
        "deploy/k8s/base/sweep-job.yaml is stale: run "
        "`python -m spiker_services.optimizer.kubernetes_job --render > deploy/k8s/base/sweep-job.yaml`")
    assert yaml.safe_load(committed) == kj.build_sweep_job(kj.TEMPLATE_TASK_KEY, kj.TEMPLATE_COUNT,
                                                           kj.DEFAULT_IMAGE, name=kj.TEMPLATE_NAME)


def test_render_cli_matches() -> None:
    """`python -m spiker_services.optimizer.kubernetes_job --render` prints the same text."""
    proc = subprocess.run([sys.executable, "-m", "spiker_services.optimizer.kubernetes_job", "--render"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout == kj.render_template()


@pytest.mark.parametrize("count", [1, 4, 37])
def test_built_job_is_valid_and_indexed(count: int) -> None:
    """Indexed, completions = parallelism = shard count, per-index backoff, TTL, worker command; schema-valid."""
    job = kj.build_sweep_job(TASK, count, "registry.example/spiker:1.2", namespace="lab")
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == count
    assert spec["backoffLimitPerIndex"] == 2 and spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    (c,) = spec["template"]["spec"]["containers"]
    assert c["command"] == ["spiker"]
    assert c["args"] == ["worker", "sweep", "--task", "$(TASK_KEY)", "--count", str(count)]
    env = {e["name"]: e for e in c["env"]}
    assert env["TASK_KEY"]["value"] == TASK
    assert env["SPIKER_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "spiker-s3"
    assert c["envFrom"] == [{"configMapRef": {"name": "spiker-config"}}]
    assert job["metadata"]["name"] == f"spiker-sweep-0123456789ab-of-{count}"
    assert job["metadata"]["namespace"] == "lab"
    assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == "spiker"


def test_job_security_settings() -> None:
    """The sweep worker runs with the same hardening as the Deployments."""
    job = kj.build_sweep_job(TASK, 3)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for c in containers(job):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}


def test_options_and_errors() -> None:
    """Options reach the object; bad counts, parallelism and names are refused."""
    job = kj.build_sweep_job(TASK, 8, parallelism=2, max_failed_indexes=1, active_deadline_seconds=600,
                             backoff_limit_per_index=0, name="my-sweep")
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert (job["spec"]["parallelism"], job["spec"]["maxFailedIndexes"], job["spec"]["activeDeadlineSeconds"],
            job["spec"]["backoffLimitPerIndex"]) == (2, 1, 600, 0)
    for kwargs in ({"count": 0}, {"count": 3, "parallelism": 4}, {"count": 2, "name": "Bad_Name"},
                   {"count": 2, "name": "x" * 64}, {"count": 2, "backoff_limit_per_index": -1}):
        count = kwargs.pop("count")
        with pytest.raises(ValueError):
            kj.build_sweep_job(TASK, count, **kwargs)
    assert kj.sweep_job_name("some/other/key.json", 3).startswith("spiker-sweep-")


def test_parse_indexes() -> None:
    """Kubernetes' interval notation for completed/failed indexes."""
    assert kj.parse_indexes("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert kj.parse_indexes("") == [] and kj.parse_indexes(None) == []


# -- executor against doubles ---------------------------------------------------------------------


class ApiError(Exception):
    """Stands in for kubernetes.client.ApiException (the executor only reads ``status``)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class FakeBatch:
    """BatchV1Api double: records created/deleted Jobs; ``statuses`` feed the watch."""

    def __init__(self, statuses: list[dict[str, Any]], exists: bool = False) -> None:
        self.statuses = statuses
        self.exists = exists
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.exists:
            raise ApiError(409)
        self.created.append(body)
        return body

    def list_namespaced_job(self, namespace: str, **kwargs: Any) -> None:  # pragma: no cover - via FakeWatch
        raise AssertionError("called through the watch")

    def delete_namespaced_job(self, name: str, namespace: str, propagation_policy: str = "") -> None:
        self.deleted.append(name)


class FakeCore:
    """CoreV1Api double: one failed pod of index 1 with a log line."""

    def list_namespaced_pod(self, namespace: str, label_selector: str = "") -> Any:
        pod = {"metadata": {"name": "p1", "labels": {"batch.kubernetes.io/job-completion-index": "1"}},
               "status": {"phase": "Failed"}}
        return type("PodList", (), {"items": [pod]})()

    def read_namespaced_pod_log(self, name: str, namespace: str, tail_lines: int = 5) -> str:
        return "spiker worker: error: index: boom\n"


class FakeWatch:
    """watch.Watch double: each stream() yields the next batch of Job states."""

    batches: list[list[dict[str, Any]]] = []

    def stream(self, func: Any, namespace: str, **kwargs: Any) -> Any:
        assert kwargs["field_selector"].startswith("metadata.name=spiker-sweep-")
        batch = FakeWatch.batches.pop(0) if FakeWatch.batches else []
        for job in batch:
            yield {"type": "MODIFIED", "object": job}

    def stop(self) -> None:
        pass


def job_state(completed: str = "", failed: str = "", condition: str = "") -> dict[str, Any]:
    """A Job as the API serialises it, with the given index sets and final condition."""
    status: dict[str, Any] = {"completedIndexes": completed, "failedIndexes": failed}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "reason": "Why", "message": "what"}]
    return {"metadata": {"name": "spiker-sweep-0123456789ab-of-3", "namespace": "lab"},
            "spec": {"completions": 3}, "status": status}


def make_executor(batch: FakeBatch, batches: list[list[dict[str, Any]]], **kwargs: Any) -> kj.KubernetesSweepExecutor:
    FakeWatch.batches = batches
    return kj.KubernetesSweepExecutor("spiker:test", "lab", batch_api=batch, core_api=FakeCore(),
                                      watch_factory=FakeWatch, watch_seconds=1, **kwargs)


def test_executor_success() -> None:
    """Submit, watch progress across watch periods, return the shard keys in index order."""
    batch = FakeBatch([])
    seen: list[tuple[list[int], list[int]]] = []
    ex = make_executor(batch, [[job_state("0")], [], [job_state("0-1"), job_state("0-2", condition="Complete")]])
    result = ex.run(TASK, 3, progress=lambda s: seen.append((s.succeeded, s.failed)))
    (body,) = batch.created
    assert body == ex.build(TASK, 3)
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "spiker:test"
    assert result.succeeded == [0, 1, 2]
    assert result.shard_keys == [shard_key(TASK, i, 3) for i in range(3)]
    assert seen == [([0], []), ([0, 1], []), ([0, 1, 2], [])]


def test_executor_reuses_existing_job() -> None:
    """A Job of the same task and count already there (409) is watched, not recreated."""
    batch = FakeBatch([], exists=True)
    result = make_executor(batch, [[job_state("0-2")]]).run(TASK, 3)
    assert batch.created == [] and result.succeeded == [0, 1, 2]


def test_executor_failure_names_indexes_and_logs() -> None:
    """A failed index raises SweepJobError naming the index, the reason and the pod's last log line."""
    batch = FakeBatch([])
    ex = make_executor(batch, [[job_state("0,2", "1", condition="Failed")]], delete_on_failure=True)
    with pytest.raises(kj.SweepJobError) as info:
        ex.run(TASK, 3)
    err = info.value
    assert err.failed == [1] and "index(es) 1 of 3" in str(err) and "boom" in str(err)
    assert "kubectl logs -n lab" in str(err)
    assert batch.deleted == ["spiker-sweep-0123456789ab-of-3"]


def test_executor_cancel_deletes_the_job() -> None:
    """Cancellation deletes the Job and raises."""
    batch = FakeBatch([])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(kj.SweepJobError, match="cancelled"):
        make_executor(batch, []).run(TASK, 3, cancel=cancel)
    assert batch.deleted == ["spiker-sweep-0123456789ab-of-3"]


def test_executor_timeout() -> None:
    """No progress within timeout_seconds: the Job is deleted and the error says so."""
    batch = FakeBatch([])
    ex = make_executor(batch, [[job_state("0")]] * 3, timeout_seconds=0.0)
    with pytest.raises(kj.SweepJobError, match="did not finish"):
        ex.run(TASK, 3)
    assert batch.deleted


def test_executor_from_env() -> None:
    """SPIKER_SWEEP_* settings configure the image, namespace and Job options."""
    env = {"SPIKER_SWEEP_IMAGE": "spiker:dev", "SPIKER_SWEEP_NAMESPACE": "spiker-dev",
           "SPIKER_SWEEP_PARALLELISM": "2", "SPIKER_SWEEP_BACKOFF_LIMIT_PER_INDEX": "1",
           "SPIKER_SWEEP_TIMEOUT": "60", "SPIKER_SWEEP_TTL_SECONDS": "120"}
    ex = kj.KubernetesSweepExecutor.from_env(env, batch_api=FakeBatch([]), core_api=FakeCore(),
                                             watch_factory=FakeWatch)
    job = ex.build(TASK, 5)
    assert (ex.image, ex.namespace, ex.timeout_seconds) == ("spiker:dev", "spiker-dev", 60.0)
    assert (job["spec"]["parallelism"], job["spec"]["completions"], job["spec"]["backoffLimitPerIndex"],
            job["spec"]["ttlSecondsAfterFinished"]) == (2, 5, 1, 120)
    assert ex.build(TASK, 1)["spec"]["parallelism"] == 1


def test_real_client_objects_are_understood() -> None:
    """A V1Job model from the kubernetes client is read like the API's JSON (camelCase)."""
    client = pytest.importorskip("kubernetes.client", reason="pip install kubernetes")
    job = client.V1Job(metadata=client.V1ObjectMeta(name="j", namespace="lab"),
                       spec=client.V1JobSpec(completions=2, template=client.V1PodTemplateSpec()),
                       status=client.V1JobStatus(completed_indexes="0-1", conditions=[
                           client.V1JobCondition(type="Complete", status="True")]))
    state = kj.job_status(kj.api_dict(job))
    assert (state.succeeded, state.condition, state.count) == ([0, 1], "Complete", 2)
