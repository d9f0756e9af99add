"""Helpers of the deploy tests: repository paths, YAML loading, the container walk, kustomize."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
K8S_DEV = DEPLOY / "k8s" / "overlays" / "dev"
#: the Kubernetes version the manifests are validated against (backoffLimitPerIndex is GA in 1.33)
K8S_VERSION = "1.33.0"


def load_all(text: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document in ``text``."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload object (Deployment, StatefulSet, Job), else None."""
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """All containers (init containers included) of a workload object."""
    spec = pod_spec(obj)
    if spec is None:
        return
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def render_dev() -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/k8s/overlays/dev``, parsed (skips without kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the kustomize overlay")
    proc = subprocess.run([kubectl, "kustomize", str(K8S_DEV)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize failed:\n{proc.stderr}"
    return load_all(proc.stdout)
