"""Fixtures of the integration suites that run Locust against a paused `sleep` victim (see test_revert_always.Scene)."""
from __future__ import annotations

import pytest


@pytest.fixture
def scene(tmp_path):
    """A victim process, a loopback HTTP server, and a locustfile and scenario in tmp_path; all ended by pid after."""
    from tests.integration.test_revert_always import Scene

    scene = Scene(tmp_path)
    try:
        yield scene
    finally:
        scene.close()
