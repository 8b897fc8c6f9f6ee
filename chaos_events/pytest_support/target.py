"""The platform a chaos test runs against: the user's (--chaos-target-url) or a demo platform started for the test.

Part of the pytest plugin (chaos_events.pytest_plugin). Imports pytest and the standard library (the demo
supervisor lazily, only when a demo is started); never locust, gevent, docker or prometheus_client.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class ChaosTarget:
    """The platform a chaos test runs against. Invariant: `platform` is set exactly when the demo was started here.

    Example: ChaosTarget("http://127.0.0.1:8000", "127.0.0.1:19092").health() -> (200, {"status": "ok", ...})
    """

    api_url: str
    kafka_bootstrap: str = ""
    platform: Any = None                      # chaos_events.demo.supervisor.Platform, when the demo runs
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        return self.platform is not None

    def env(self) -> dict[str, str]:
        """What scenarios interpolate: the demo's DEMO_* facts, or DEMO_API_URL / DEMO_KAFKA_BOOTSTRAP for a user target."""
        if self.platform is not None:
            env = dict(self.platform.env())
        else:
            env = {"DEMO_API_URL": self.api_url, "CHAOS_TARGET_URL": self.api_url}
            if self.kafka_bootstrap:
                env.update(DEMO_KAFKA_BOOTSTRAP=self.kafka_bootstrap, CHAOS_TARGET_KAFKA=self.kafka_bootstrap)
        return {**env, **self.extra_env}

    def require_demo(self, why: str = "") -> Any:
        """The demo Platform, or skip the test: it needs the demo's pidfiles, proxy or store."""
        if self.platform is None:
            pytest.skip(f"needs the demo platform{': ' + why if why else ''}; the target is {self.api_url} (--chaos-target-url)")
        return self.platform

    def get_json(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """GET api_url + path: (status, parsed JSON body or text). A refused connection is status 0."""
        return http_json("GET", self.api_url + path, timeout=timeout)

    def health(self) -> tuple[int, Any]:
        return self.get_json("/health")

    def wait_healthy(self, timeout: float = 30.0) -> dict:
        """Wait until /health answers 200; fail the test with the last answer otherwise."""
        deadline = time.monotonic() + timeout
        status, body = 0, None
        while time.monotonic() < deadline:
            status, body = self.health()
            if status == 200:
                return body
            time.sleep(0.25)
        pytest.fail(f"{self.api_url}/health did not answer 200 within {timeout:g} s; last answer {status}: {body}")


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One HTTP request with the standard library: (status, JSON body or text); (0, error text) when unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Accept": "application/json", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        return 0, str(getattr(exc, "reason", None) or exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")



def _target_url(config) -> str | None:
    # getoption with a default: loaded late from a conftest, the options may not exist (see tests/chaos/conftest.py).
    return config.getoption("chaos_target_url", None) or os.environ.get("CHAOS_TARGET_URL") or None


@contextlib.contextmanager
def open_chaos_target(config, run_dir: Path):
    """The target the options name, or a demo platform started in `run_dir` and stopped on exit.

    For a conftest that wants another fixture scope, e.g. one demo platform per module:
        @pytest.fixture(scope="module")
        def chaos_target(request, tmp_path_factory):
            with open_chaos_target(request.config, tmp_path_factory.mktemp("demo")) as target:
                yield target
    """
    url = _target_url(config)
    if url:
        kafka = config.getoption("chaos_target_kafka", None) or os.environ.get("CHAOS_TARGET_KAFKA") or ""
        yield ChaosTarget(url.rstrip("/"), kafka)
        return
    try:
        from chaos_events.demo.supervisor import start_platform
    except ImportError as exc:
        pytest.skip(f"no demo platform to start ({exc}); give --chaos-target-url or install chaos-events[demo]")
    platform = start_platform(Path(run_dir) / "demo")
    try:
        yield ChaosTarget(platform.api_url, platform.kafka_bootstrap, platform=platform)
    finally:
        platform.stop()

