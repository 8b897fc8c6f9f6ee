"""Fixtures shared by every suite. The demo platform fixtures start real processes and stop them by pid.

gevent patches the standard library first, as it does in every Locust process: several suites import locust, and
patching ssl after requests has imported it ends in a RecursionError.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()


import pytest

from tests.helpers import running_tansu

# Loaded by its entry point once the package is installed; named here too so a bare checkout works the same.
pytest_plugins = ["chaos_events.pytest_plugin"]


@pytest.fixture(scope="session")
def demo_platform(tmp_path_factory):
    """One demo platform (broker, API, consumer, proxies) shared by the tests that only read from it."""
    from chaos_events.demo.supervisor import start_platform

    platform = start_platform(tmp_path_factory.mktemp("demo-run"))
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture
def fresh_platform(tmp_path):
    """A demo platform of the test's own, for tests that break it."""
    from chaos_events.demo.supervisor import start_platform

    platform = start_platform(tmp_path / "demo-run")
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture
def tansu():
    """A Tansu broker of the test's own; yields the bootstrap address."""
    with running_tansu() as bootstrap:
        yield bootstrap
