"""The web UI's safety rules (issue #16) on a real Locust with the plugin: where it listens, the refusal of a
non-loopback bind without --web-login, cross-origin writes refused with 403, and form-chosen scenario paths
outside the scenario directory refused with its message in the start form.

Every request goes to 127.0.0.1. Where Locust listens is read from /proc/PID/net/tcp{,6} for the socket inodes the
Locust process holds, never by connecting to another address. Locust, the `sleep` victim and the loopback HTTP
server are the `scene` fixture's (tests/integration/test_revert_always.Scene), ended by pid even when a test fails.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from chaos_events.backends.process import wait_until as poll
from chaos_events.errors import ExitCode
from tests.helpers import VENV_BIN, free_port, stop_group
from tests.integration.test_webui import chromium  # noqa: F401  (the headless Chromium fixture)

EVIL = "http://evil.example"


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """The (address, port) of every TCP socket process `pid` listens on, from /proc (no connection is made)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def http(port: int, path: str, method: str = "GET", form: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    """One request to the web UI on 127.0.0.1; (status, JSON body)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_ready(scene, proc, port: int) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"locust exited with {proc.returncode}:\n{scene.output()[-4000:]}")
        try:
            return http(port, "/stats/requests")[0] == 200
        except OSError:
            return False

    assert poll(ready, 30), f"the web UI never answered on 127.0.0.1:{port}\n{scene.output()[-4000:]}"


def test_the_web_ui_listens_on_loopback_unless_web_host_is_given(scene):
    port = free_port()
    proc = scene.start(scene.args(None, "--web-port", str(port), headless=False))
    wait_ready(scene, proc, port)
    web_ui = {addr for addr in listening_sockets(proc.pid) if addr[1] == port}
    assert web_ui == {("127.0.0.1", port)}, f"the web UI listens on {web_ui}"
    assert (f"chaos-events: the web UI listens on 127.0.0.1 only: http://127.0.0.1:{port} "
            "(give --web-host to choose another address)") in scene.output()


def test_the_exporter_and_the_proxy_control_api_listen_on_loopback_by_default(scene):
    """Neither --chaos-metrics-host nor the proxy's -host is given: both must bind 127.0.0.1, not all interfaces."""
    metrics_port, control_port = free_port(), free_port()
    proc = scene.start(scene.args("30s", "--chaos-metrics-port", str(metrics_port)))  # the last value wins
    proxy = subprocess.Popen([str(VENV_BIN / "chaos-events"), "proxy", "-port", str(control_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert poll(lambda: any(p == metrics_port for _, p in listening_sockets(proc.pid)), 30), scene.output()[-4000:]
        assert poll(lambda: any(p == control_port for _, p in listening_sockets(proxy.pid)), 30)
        assert {a for a, p in listening_sockets(proc.pid) if p == metrics_port} == {"127.0.0.1"}
        assert {a for a, p in listening_sockets(proxy.pid) if p == control_port} == {"127.0.0.1"}
    finally:
        stop_group(proxy)


@pytest.mark.parametrize("given", ["command line", "environment", "locust.conf"])
def test_a_non_loopback_web_host_without_login_exits_2_before_any_fault(scene, given):
    port = free_port()
    extra, env = [], {}
    if given == "command line":
        extra = ["--web-host", "0.0.0.0"]
    elif given == "environment":
        env = {"LOCUST_WEB_HOST": "0.0.0.0"}
    else:
        (scene.tmp / "locust.conf").write_text("web-host = 0.0.0.0\n")  # Locust runs in scene.tmp
    run = scene.run(scene.args(None, "--web-port", str(port), "--autostart", *extra, headless=False), env=env, timeout=60)
    assert run.returncode == ExitCode.BAD_INPUT, run.output[-4000:]
    ours = [line for line in run.stderr.splitlines() if line.startswith("chaos-events:")]
    assert ours == ["chaos-events: --web-host 0.0.0.0: a web UI reachable from other machines can start and abort "
                    "chaos, so it needs --web-login; add --web-login (and a login_manager.user_loader in the "
                    "locustfile) or use --web-host 127.0.0.1"], run.output[-4000:]
    assert "Traceback" not in run.output
    assert "T" not in scene.seen, "the fault started although the web host was refused"
    assert scene.journal_entries() == {}


def test_cross_origin_writes_get_403_and_change_nothing(scene):
    port = free_port()
    proc = scene.start(scene.args(None, "--web-port", str(port), "--autostart", headless=False))
    scene.wait_paused(proc=proc)
    assert poll(lambda: http(port, "/chaos/state")[1]["active"] != [], 10), scene.output()[-4000:]

    for path, headers in (("/chaos/abort", {"Origin": EVIL}), ("/chaos/abort", {"Referer": EVIL + "/page"}),
                          ("/stop", {"Origin": EVIL}),
                          ("/swarm", {"Origin": f"http://127.0.0.1:{port + 1}"})):  # another port, another origin
        status, body = http(port, path, "POST", headers=headers)
        header, value = next(iter(headers.items()))
        assert status == 403, (path, headers, body)
        assert body["ok"] is False and body["message"].startswith(
            f"cross-origin request refused: {header} {value!r} does not match this web UI's host '127.0.0.1:{port}'")
    state = http(port, "/chaos/state")[1]
    assert [a["fault"] for a in state["active"]] == ["pause"] and state["running"] is True
    assert [o["state"] for o in state["timeline"]] == ["active"]
    assert scene.victim_paused(), "a refused request reverted the fault"
    assert http(port, "/stats/requests")[1]["state"] == "running"

    # The same abort from the web UI's own origin goes through: the refusal above was the guard, not a broken route.
    status, body = http(port, "/chaos/abort", "POST", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and body["ok"] is True, body
    assert poll(lambda: not scene.victim_paused(), 5), scene.output()[-4000:]


@pytest.mark.chromium
def test_a_page_of_another_origin_in_a_real_browser_cannot_abort_the_chaos(scene, chromium):
    port = free_port()
    proc = scene.start(scene.args(None, "--web-port", str(port), "--autostart", headless=False))
    scene.wait_paused(proc=proc)
    # The other origin: the scene's loopback HTTP server (another port) serves the attacking page.
    (scene.site / "attack.html").write_text("<p>another site</p>\n")
    chromium.open(f"{scene.host}/attack.html")
    ui = json.dumps(f"http://127.0.0.1:{port}")
    # Locust's web UI answers every origin with CORS headers, so the page could even read the answer: a refusal.
    fetched = chromium.js(f"fetch({ui} + '/chaos/abort', {{method: 'POST'}}).then(async r => [r.status, await r.json()])")
    assert fetched[0] == 403 and fetched[1]["message"].startswith(
        f"cross-origin request refused: Origin {scene.host!r} does not match"), fetched
    # The classic form post, which needs no script access to the answer.
    chromium.js(f"(() => {{ const f = document.createElement('form'); f.method = 'POST'; f.action = {ui} + '/stop'; "
                "document.body.appendChild(f); f.submit(); return true; })()")
    assert poll(lambda: "cross-origin request refused" in chromium.text(), 10), chromium.text()[-1000:]
    assert scene.victim_paused(), "the page of another origin reverted the fault"
    state = http(port, "/chaos/state")[1]
    assert state["running"] is True and [o["state"] for o in state["timeline"]] == ["active"]
    assert http(port, "/stats/requests")[1]["state"] == "running"


def test_a_scenario_path_outside_the_scenario_directory_is_refused_and_never_read(scene):
    port = free_port()
    proc = scene.start(scene.args(None, "--web-port", str(port), headless=False))
    wait_ready(scene, proc, port)
    directory = scene.tmp.resolve()  # the directory of the --chaos-plan Locust started with
    outside = scene.tmp.parent / "outside.yml"
    for value, resolved in (("../outside.yml", outside.resolve()), ("/etc/passwd", Path("/etc/passwd").resolve()),
                            (str(scene.tmp / "sub" / ".." / ".." / "outside.yml"), outside.resolve())):
        status, body = http(port, "/swarm", "POST", form={"user_count": "1", "spawn_rate": "1", "chaos_plan": value})
        assert status == 200, (value, body)  # 200 + success false: the start form shows the message
        assert body["success"] is False and body["message"] == (
            f"Scenario refused, run not started: chaos_plan {value!r} resolves to {resolved}, outside the scenario "
            f"directory {directory} (the directory of --chaos-plan); choose a scenario file under that directory")
    assert http(port, "/stats/requests")[1]["state"] == "ready"
    assert http(port, "/chaos/state")[1]["scenario"] == "lifecycle"

    # A scenario in the directory is accepted, and the run starts with it.
    (scene.tmp / "other.yml").write_text("name: other\nslos:\n  - {name: errors, metric: error_rate, max: 100%}\n")
    status, body = http(port, "/swarm", "POST", form={"user_count": "1", "spawn_rate": "1", "chaos_plan": "other.yml"})
    assert status == 200 and body["success"] is True, body
    assert poll(lambda: http(port, "/chaos/state")[1]["scenario"] == "other", 10)
