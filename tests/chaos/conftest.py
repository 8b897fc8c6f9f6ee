"""The seed's four chaos categories as pytest suites: shared helpers for Baseline -> Chaos -> Observe -> Validate ->
Recover -> Verify.

The fixtures (`chaos_target`, `chaos_run`, `chaos_result`, marker `chaos`) come from chaos_events.pytest_plugin.
An installed chaos-events registers the plugin as a pytest11 entry point, and a top-level conftest may list it in
`pytest_plugins`. This conftest cannot use `pytest_plugins` itself: pytest refuses it in a conftest that is not
loaded at start-up, which is the case under `pytest tests/`. So it imports the fixtures (a conftest's fixtures shadow
a plugin's, harmlessly) and hands the hooks to the plugin only when the plugin is not registered already. Loaded
late like that, the command-line options are not known to pytest; run `pytest tests/chaos/ --chaos-target-url ...`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from chaos_events import pytest_plugin as _plugin
from chaos_events.pytest_plugin import chaos_result, chaos_run  # noqa: F401  (fixtures)


def _plugin_registered(pluginmanager) -> bool:
    return pluginmanager.is_registered(_plugin)


def pytest_addoption(parser, pluginmanager):
    if not _plugin_registered(pluginmanager):
        _plugin.pytest_addoption(parser)


def pytest_configure(config):
    if not _plugin_registered(config.pluginmanager):
        _plugin.pytest_configure(config)


def pytest_collection_modifyitems(session, config, items):
    if not _plugin_registered(config.pluginmanager):
        _plugin.pytest_collection_modifyitems(session, config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if not _plugin_registered(item.config.pluginmanager):
        _plugin.assert_marked_slos(item)
    return result


SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def scenario(name: str) -> str:
    return str(SCENARIOS / name)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not seen within {timeout:g} s (last: {last!r})")


def process_state(pid: int) -> str | None:
    """The state letter in /proc/PID/stat ('R', 'S', 'T' stopped, 'Z' zombie), or None when the pid is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return None


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def route_toxics(platform, route: str) -> list[dict]:
    """The toxics on one of the demo proxy's routes, read from its control API."""
    from chaos_events.backends.proxy import ProxyClient

    return list(ProxyClient(platform.proxy_control_url).toxics(route))


def assert_healthy_baseline(result, max_error_rate: float = 0.02, endpoints: str | None = None):
    """Baseline: before the first fault, the target carried traffic without errors. Judged over the whole seconds
    before the first injection, so the second in which the fault began does not count as baseline."""
    injected = result.injected()
    assert injected, f"no fault was injected:\n{result.verdict_table()}"
    base = result.between(0.0, injected[0].t, endpoints)
    assert base.requests > 0, f"no requests in the baseline:\n{result.verdict_table()}"
    assert base.error_rate is not None and base.error_rate <= max_error_rate, (
        f"baseline already unhealthy: error rate {base.error_rate:.1%} over {base.requests} requests")
    return base


def admin_stats(target) -> dict:
    status, body = target.get_json("/admin/stats")
    assert status == 200, f"/admin/stats answered {status}: {body}"
    return body


@pytest.fixture(scope="module")
def chaos_target(request, tmp_path_factory):
    """One platform per test module (the plugin's default is one per test): a demo start costs seconds, and the
    whole of tests/chaos/ must stay within a few minutes. Every test starts by waiting for /health 200 and ends by
    verifying recovery, so a test that broke the platform fails itself rather than the next one."""
    from chaos_events.pytest_plugin import open_chaos_target

    with open_chaos_target(request.config, tmp_path_factory.mktemp("chaos-target")) as target:
        yield target
