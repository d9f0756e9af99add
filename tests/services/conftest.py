"""Fixtures of the service tests: a tiny dataset and net, stores on both backends, in-process servers.

Servers are real gRPC servers on 127.0.0.1 (ephemeral ports); the S3 backend is the real
SeaweedFS fixture from tests/s3_server.py. Trained models are shared per store backend so that
only one training runs per session and backend.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # spiker_services/ and spiker_api/ until pyproject packages them
    sys.path.insert(0, str(ROOT))

from svc_support import Stack  # noqa: E402

from spiker.store import LocalStore, S3Store  # noqa: E402


def _local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(LocalStore(tmp_path_factory.mktemp("store")), tmp_path_factory.mktemp("work"))
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Four services on one server over a LocalStore."""
    yield from _local_stack(tmp_path_factory)


@pytest.fixture(scope="session")
def s3_stack(s3_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: ANN001
    """Four services on one server over an S3Store on the SeaweedFS fixture (its own bucket)."""
    info = s3_server.make_bucket()
    store = S3Store(info.endpoint, info.access_key, info.secret_key, info.bucket, info.secure)
    # sweep workers open the store from these variables (the process env is left alone)
    stack = Stack(store, tmp_path_factory.mktemp("work-s3"), worker_env=info.env())
    yield stack
    stack.close()


@pytest.fixture(params=["local", "s3"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Each test that takes ``stack`` runs on both backends."""
    return request.getfixturevalue(f"{request.param}_stack")
