"""Fixtures of the deploy tests."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_helpers import render_dev


@pytest.fixture(scope="session")
def dev_objects() -> list[dict[str, Any]]:
    """The dev overlay rendered by ``kubectl kustomize`` (skips without kubectl)."""
    return render_dev()
