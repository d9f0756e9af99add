"""Kubernetes manifests: the dev overlay renders, every object passes strict offline schema
validation, and the security, probe, resource and network settings are present."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_helpers import K8S_BASE, K8S_VERSION, containers, load_all, pod_spec

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")

SPIKER_APPS = ("spiker-gateway", "spiker-trainer", "spiker-optimizer", "spiker-hdlgen", "spiker-simulator")
STAGES = SPIKER_APPS[1:]


def by_kind_name(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` named ``name``."""
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def test_every_object_passes_strict_validation(dev_objects: list[dict[str, Any]]) -> None:
    """`kubernetes-validate --strict` (offline schemas) accepts every rendered object."""
    assert len(dev_objects) >= 20
    for obj in dev_objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_strict_validation_rejects_a_typo() -> None:
    """The validator is really strict: an unknown field is an error (guards the test above)."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}, "dta": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_expected_objects_exist(dev_objects: list[dict[str, Any]]) -> None:
    """Deployment + Service for the gateway and the four stages, MinIO, ConfigMap, Secrets, policies."""
    for name in SPIKER_APPS:
        by_kind_name(dev_objects, "Deployment", name)
        by_kind_name(dev_objects, "Service", name)
    sts = by_kind_name(dev_objects, "StatefulSet", "spiker-minio")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    by_kind_name(dev_objects, "Service", "spiker-minio")
    by_kind_name(dev_objects, "ConfigMap", "spiker-config")
    by_kind_name(dev_objects, "Secret", "spiker-s3")
    by_kind_name(dev_objects, "Secret", "spiker-gateway-tokens")
    assert {o["metadata"].get("namespace") for o in dev_objects if o["kind"] != "Namespace"} == {"spiker-dev"}


def test_security_settings_on_every_container(dev_objects: list[dict[str, Any]]) -> None:
    """Non-root, read-only root fs (+ writable /tmp), no privilege escalation, no capabilities, seccomp."""
    workloads = [o for o in dev_objects if pod_spec(o) is not None]
    assert len(workloads) >= 7
    for obj in workloads:
        spec = pod_spec(obj)
        assert spec is not None
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in containers(obj):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert not sc.get("privileged", False), where
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") in tmp_volumes, f"{where}: /tmp must be an emptyDir"
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], where
            assert res["limits"]["cpu"] and res["limits"]["memory"], where


def test_grpc_health_probes(dev_objects: list[dict[str, Any]]) -> None:
    """Gateway and stages: readiness and liveness through grpc.health.v1 on the serving port."""
    for name in SPIKER_APPS:
        dep = by_kind_name(dev_objects, "Deployment", name)
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        port = c["ports"][0]["containerPort"]
        short = name.removeprefix("spiker-")
        if short == "gateway":
            assert c["args"][0] == "gateway" and "--tokens" in c["args"]
            for stage in STAGES:
                assert c["args"][c["args"].index("--" + stage.removeprefix("spiker-")) + 1] == f"{stage}:50051"
        else:
            assert c["args"][:2] == ["serve", short]
        assert c["args"][c["args"].index("--port") + 1] == str(port)
        probe_port = port
        if short == "gateway":  # TLS from a Secret; the probes use the plaintext health-only port
            assert c["args"][c["args"].index("--tls-dir") + 1] == "/etc/spiker/tls"
            probe_port = int(c["args"][c["args"].index("--health-port") + 1])
            assert {"name": "health", "containerPort": probe_port, "protocol": "TCP"} in c["ports"]
            volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
            assert volumes["gateway-tls"]["secret"]["secretName"] == "spiker-gateway-tls"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c[probe]["grpc"]["port"] == probe_port, f"{name} {probe}"
        if name != "spiker-gateway":
            service = {"spiker-trainer": "TrainerService", "spiker-optimizer": "OptimizerService",
                       "spiker-hdlgen": "HdlgenService", "spiker-simulator": "SimulatorService"}[name]
            assert c["readinessProbe"]["grpc"]["service"] == f"spiker.v1.{service}"
        svc = by_kind_name(dev_objects, "Service", name)
        assert svc["spec"]["ports"][0]["port"] == port


def test_secrets_are_references_in_the_base() -> None:
    """The base defines no Secret and no key material; containers take keys through secretKeyRef."""
    objs = [doc for path in sorted(K8S_BASE.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_all(path.read_text())]
    assert not [o for o in objs if o["kind"] == "Secret"]
    config = by_kind_name(objs, "ConfigMap", "spiker-config")
    assert not [k for k in config["data"] if any(s in k for s in ("ACCESS_KEY", "SECRET", "TOKEN", "PASSWORD"))]
    for obj in objs:
        for c in containers(obj):
            for env in c.get("env", []):
                if any(s in env["name"] for s in ("ACCESS_KEY", "SECRET_KEY", "PASSWORD", "ROOT_USER")):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{obj['metadata']['name']}: {env['name']}"


def test_network_policy_only_gateway_reaches_stages(dev_objects: list[dict[str, Any]]) -> None:
    """Stage pods admit ingress only from the gateway's pods, on the gRPC port; default deny otherwise."""
    policies = [o for o in dev_objects if o["kind"] == "NetworkPolicy"]
    deny = by_kind_name(policies, "NetworkPolicy", "spiker-default-deny-ingress")
    assert deny["spec"]["ingress"] == [] and deny["spec"]["policyTypes"] == ["Ingress"]
    stage_labels = {n: by_kind_name(dev_objects, "Deployment", n)["spec"]["template"]["metadata"]["labels"]
                    for n in SPIKER_APPS}

    def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
        want = policy["spec"]["podSelector"].get("matchLabels", {})
        return all(labels.get(k) == v for k, v in want.items())

    for name in STAGES:
        admitting = [p for p in policies if selects(p, stage_labels[name]) and p["spec"]["ingress"]]
        assert admitting, f"no policy admits traffic to {name}"
        for policy in admitting:
            for rule in policy["spec"]["ingress"]:
                peers = rule["from"]
                assert peers == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "spiker-gateway"}}}], \
                    f"{policy['metadata']['name']} lets more than the gateway reach {name}"
                assert [p["port"] for p in rule["ports"]] == [50051]
    gateway = [p for p in policies if selects(p, stage_labels["spiker-gateway"]) and p["spec"]["ingress"]]
    assert gateway, "the gateway must admit its clients"


def test_minio_statefulset_uses_secret_and_pvc(dev_objects: list[dict[str, Any]]) -> None:
    """MinIO: root credentials from the spiker-s3 Secret, data on a volumeClaimTemplate, HTTP health probes."""
    sts = by_kind_name(dev_objects, "StatefulSet", "spiker-minio")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "spiker-s3", "key": "access-key"}
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "spiker-s3", "key": "secret-key"}
    assert {m["name"] for m in c["volumeMounts"]} >= {"data"}
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert c["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    config = by_kind_name(dev_objects, "ConfigMap", "spiker-config")["data"]
    assert config["SPIKER_S3_ENDPOINT"] == "http://spiker-minio:9000"
    assert config["SPIKER_SWEEP_IMAGE"] == "spiker:dev"


def test_kustomization_lists_every_manifest_but_the_template() -> None:
    """Every base manifest is a kustomize resource, except the sweep Job template (one Job per sweep)."""
    kust = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    files = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files - {"sweep-job.yaml"}
