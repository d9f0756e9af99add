"""deploy/compose.yaml: valid against the Compose Specification (offline schema; `docker compose
config` too where the compose plugin exists), and wired as the design asks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import DEPLOY

COMPOSE = DEPLOY / "compose.yaml"
SPIKER_SERVICES = ("trainer", "optimizer", "hdlgen", "simulator", "gateway")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file, parsed (YAML merge keys resolved)."""
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_spec_schema() -> None:
    """The file validates against the Compose Specification schema vendored by check-jsonschema."""
    jsonschema = pytest.importorskip("jsonschema")
    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor", reason="pip install check-jsonschema")
    schema = json.loads((Path(vendor.__file__).parent / "compose-spec.json").read_text())
    doc = yaml.safe_load(COMPOSE.read_text())
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_schema_catches_errors() -> None:
    """The schema check is not vacuous: an unknown service key is reported."""
    jsonschema = pytest.importorskip("jsonschema")
    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor", reason="pip install check-jsonschema")
    schema = json.loads((Path(vendor.__file__).parent / "compose-spec.json").read_text())
    doc = yaml.safe_load(COMPOSE.read_text())
    doc["services"]["trainer"]["imagee"] = "typo"
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))


def compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin) if installed, else the standalone `docker-compose`, else None."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config(tmp_path: Path) -> None:
    """`docker compose config` (or `docker-compose config`) accepts the file; no engine needed."""
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed; the schema test stands in")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("s3_access_key", "s3_secret_key", "gateway_tokens"):
        (secrets / name).write_text("placeholder\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SPIKER_SECRETS_DIR": str(secrets)}
    proc = subprocess.run([*cli, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    rendered = yaml.safe_load(proc.stdout)
    assert set(rendered["services"]) == {"minio", "minio-bucket", *SPIKER_SERVICES}
    assert rendered["secrets"]["s3_access_key"]["file"] == str(secrets / "s3_access_key")


def test_services_and_wiring(compose: dict[str, Any]) -> None:
    """MinIO + bucket init + five spiker services from one image; health-gated start order."""
    services = compose["services"]
    assert set(services) == {"minio", "minio-bucket", *SPIKER_SERVICES}
    assert services["minio"]["healthcheck"]["test"]
    assert services["minio-bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    images = {services[s]["image"] for s in SPIKER_SERVICES}
    assert images == {"${SPIKER_IMAGE:-spiker:0.1.0}"}
    for name in SPIKER_SERVICES:
        svc = services[name]
        assert svc["command"][:2] == (["gateway", "--host"] if name == "gateway" else ["serve", name])
        assert svc["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert svc["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully"}
        env = svc["environment"]
        assert env["SPIKER_S3_ENDPOINT"] == "http://minio:9000"
        assert env["SPIKER_PORT"] == svc["command"][svc["command"].index("--port") + 1]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    gateway = services["gateway"]
    for stage in SPIKER_SERVICES[:-1]:
        assert gateway["depends_on"][stage] == {"condition": "service_healthy"}
        assert "ports" not in services[stage], f"{stage} must not be published"
    assert compose["networks"]["backend"]["internal"] is True
    assert "minio-data" in compose["volumes"]
    assert "minio-data:/data" in services["minio"]["volumes"]


def test_keys_and_tokens_are_secrets(compose: dict[str, Any]) -> None:
    """No key or token value in the file: S3 keys and gateway tokens come from Docker secrets."""
    assert set(compose["secrets"]) == {"s3_access_key", "s3_secret_key", "gateway_tokens"}
    for name, svc in compose["services"].items():
        for var, value in (svc.get("environment") or {}).items():
            if any(s in var for s in ("ACCESS_KEY", "SECRET_KEY", "PASSWORD", "TOKEN", "ROOT_USER")):
                assert str(value).startswith("/run/secrets/"), f"{name}: {var} must point at a secret file"
    for name in SPIKER_SERVICES:
        assert {"s3_access_key", "s3_secret_key"} <= set(compose["services"][name]["secrets"])
        script = compose["services"][name]["entrypoint"][2]
        assert "/run/secrets/s3_access_key" in script and 'exec spiker "$$@"' in script
    assert "gateway_tokens" in compose["services"]["gateway"]["secrets"]
    gateway = compose["services"]["gateway"]["command"]
    assert gateway[gateway.index("--tokens") + 1] == "/run/secrets/gateway_tokens"
