"""Toxiproxy compatibility, both ways, with real parts only.

1. Toxiproxy's own clients drive the harness's proxy: toxiproxy-python (PyPI), toxiproxy-node-client (npm) and
   toxiproxy-cli (Go, built by .ci/run), each through create, toxic add, update and remove, disable, enable and reset
   (the CLI has no reset: delete instead), the effect measured on real traffic to a loopback echo server.
2. The harness drives a real Toxiproxy server (target `server: toxiproxy`): latency within ±20% or ±10 ms, bandwidth
   within ±20%, reset_peer, blackhole (timeout), down (enabled: false), each reverted with no toxic left behind.

The clients' packages are installed on first use into ~/.cache/chaos-events (outside the repository) with the
machine's own pip and npm. Every process started here is ended by its pid.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chaos_events.backends.proxy import ProxyClient, ProxyServer
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import free_port, require, require_toxiproxy, running_echo_server, stop_group

CACHE = Path.home() / ".cache" / "chaos-events"
PY_CLIENT, NODE_CLIENT = "toxiproxy-python==0.1.1", "toxiproxy-node-client@4.1.0"


# -- helpers --------------------------------------------------------------------------------------------
def _rtt_ms(address, samples=5) -> float:
    """Median round trip of 4 bytes on one fresh connection."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            sock.sendall(b"ping")
            got = b""
            while len(got) < 4:
                chunk = sock.recv(16)
                assert chunk, "closed during a round trip"
                got += chunk
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _assert_near(measured_ms, expected_ms):
    tolerance = max(0.2 * expected_ms, 10.0)
    assert abs(measured_ms - expected_ms) <= tolerance, f"{measured_ms:.1f} ms; expected {expected_ms} ms ± {tolerance:.0f}"


def _refused(address) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


@pytest.fixture(scope="module")
def echo():
    with running_echo_server() as address:
        yield address


@pytest.fixture
def harness_proxy():
    server = ProxyServer([], control="127.0.0.1:0", seed=3).start()
    try:
        yield server
    finally:
        server.stop()


# -- 1. Toxiproxy's clients against the harness's proxy ------------------------------------------------
@pytest.fixture(scope="module")
def toxiproxy_python():
    target = CACHE / "pylib" / PY_CLIENT.replace("==", "-")
    if not (target / "toxiproxy" / "server.py").exists():
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), PY_CLIENT],
                              capture_output=True, text=True, timeout=300)
        require("toxiproxy-python", done.returncode == 0, f"pip install {PY_CLIENT} failed: {done.stderr[-500:]}")
    sys.path.insert(0, str(target))
    try:
        import toxiproxy
        from toxiproxy.api import APIConsumer

        saved = (APIConsumer.host, APIConsumer.port)
        yield toxiproxy
        APIConsumer.host, APIConsumer.port = saved  # class-level state: leave it as found
    finally:
        sys.path.remove(str(target))


def test_toxiproxy_python_drives_the_harness_proxy(toxiproxy_python, harness_proxy, echo):
    from toxiproxy.api import APIConsumer
    from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

    server = toxiproxy_python.Toxiproxy()
    server.update_api_consumer("127.0.0.1", int(harness_proxy.control_url.rsplit(":", 1)[1]))
    assert json.loads(server.version())["server"] == "chaos-events"
    proxy = server.create(upstream=f"127.0.0.1:{echo[1]}", name="py", listen="127.0.0.1:0")
    address = _address(proxy.listen)
    base = _rtt_ms(address)
    with pytest.raises(ProxyExists):
        server.create(upstream=f"127.0.0.1:{echo[1]}", name="py")
    proxy.add_toxic(name="lat", type="latency", attributes={"latency": 100})
    _assert_near(_rtt_ms(address) - base, 100)
    APIConsumer.post("/proxies/py/toxics/lat", json={"attributes": {"latency": 200}})  # the client has no update call
    _assert_near(_rtt_ms(address) - base, 200)
    assert proxy.destroy_toxic("lat") is True
    _assert_near(_rtt_ms(address) - base, 0)
    with pytest.raises(NotFound):
        proxy.destroy_toxic("lat")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", attributes={"latncy": 100})  # Toxiproxy would take this as 0 ms
    proxy.disable()
    assert _refused(address)
    proxy.enable()
    _assert_near(_rtt_ms(address) - base, 0)
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    proxy.disable()
    server.reset()
    assert proxy.toxics() == {} and server.get_proxy("py").enabled is True
    _assert_near(_rtt_ms(address) - base, 0)
    assert [p.name for p in server.populate([{"name": "py2", "upstream": f"127.0.0.1:{echo[1]}", "listen": "127.0.0.1:0"}])] == ["py2"]
    server.destroy_all()
    assert server.proxies() == {}


NODE_SCRIPT = r"""
const { Toxiproxy } = require("toxiproxy-node-client");
const net = require("net");
const [control, upstream] = process.argv.slice(2);
function rtt(port) {  // median of 5 round trips of 4 bytes on one connection, in ms
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1"), times = [];
    sock.setNoDelay(true);
    let start;
    const once = () => { start = process.hrtime.bigint(); sock.write("ping"); };
    sock.on("connect", once);
    sock.on("data", () => {
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (times.length < 5) return once();
      sock.destroy(); times.sort((a, b) => a - b); resolve(times[2]);
    });
    sock.on("error", reject);
  });
}
function refused(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.on("connect", () => { sock.destroy(); resolve(false); });
    sock.on("error", (e) => resolve(e.code === "ECONNREFUSED"));
  });
}
(async () => {
  const out = {}, tp = new Toxiproxy(control);
  out.version = JSON.parse(await tp.getVersion());
  let proxy = await tp.createProxy({ name: "node", listen: "127.0.0.1:0", upstream });
  const port = Number(proxy.listen.split(":")[1]);
  out.base = await rtt(port);
  const toxic = await proxy.addToxic({ name: "lat", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 100 } });
  out.latency100 = await rtt(port);
  await toxic.update({ attributes: { latency: 200 }, toxicity: 1 });
  out.latency200 = await rtt(port);
  await toxic.remove();
  out.removed = await rtt(port);
  try { await proxy.addToxic({ type: "latency", attributes: { latncy: 100 } }); out.typo = "accepted"; }
  catch (e) { out.typo = e.message; }
  proxy = await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  out.disabled = [proxy.enabled, await refused(port)];
  proxy = await proxy.update({ enabled: true, listen: proxy.listen, upstream });
  out.enabled = await rtt(port);
  await proxy.addToxic({ name: "lat", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 100 } });
  await tp.reset();
  out.reset = await rtt(port);
  out.toxics = (await tp.getAll()).node ? (await tp.api.get(`${control}/proxies/node/toxics`)).data : null;
  out.populated = Object.keys(await tp.populate([{ name: "node2", listen: "127.0.0.1:0", upstream }]));
  await proxy.remove();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_client():
    require("Node.js and npm", bool(shutil.which("node") and shutil.which("npm")), "node/npm not on PATH")
    prefix = CACHE / "node" / NODE_CLIENT.replace("@", "-")
    if not (prefix / "node_modules" / "toxiproxy-node-client" / "package.json").exists():
        done = subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", NODE_CLIENT],
                              capture_output=True, text=True, timeout=300)
        require("toxiproxy-node-client", done.returncode == 0, f"npm install {NODE_CLIENT} failed: {done.stderr[-500:]}")
    return prefix


def test_toxiproxy_node_client_drives_the_harness_proxy(node_client, harness_proxy, echo, tmp_path):
    script = tmp_path / "drive.js"
    script.write_text(NODE_SCRIPT)
    done = subprocess.run(["node", str(script), harness_proxy.control_url, f"127.0.0.1:{echo[1]}"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "NODE_PATH": str(node_client / "node_modules")})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["version"]["server"] == "chaos-events"
    _assert_near(out["latency100"] - out["base"], 100)
    _assert_near(out["latency200"] - out["base"], 200)
    _assert_near(out["removed"] - out["base"], 0)
    assert out["typo"] == "Request failed with status code 400"
    assert out["disabled"] == [False, True]
    _assert_near(out["enabled"] - out["base"], 0)
    _assert_near(out["reset"] - out["base"], 0)
    assert out["toxics"] == [] and out["populated"] == ["node2"]


def test_toxiproxy_cli_drives_the_harness_proxy(harness_proxy, echo):
    cli = require_toxiproxy().cli
    env = {**os.environ, "TOXIPROXY_URL": harness_proxy.control_url}

    def run(*args, ok=True):
        done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=30, env=env)
        assert (done.returncode == 0) is ok, done.stdout + done.stderr
        return done.stdout + done.stderr

    listen = free_port()
    address = ("127.0.0.1", listen)
    assert "Created new proxy cli" in run("create", "-l", f"127.0.0.1:{listen}", "-u", f"127.0.0.1:{echo[1]}", "cli")
    base = _rtt_ms(address)
    assert "Added downstream latency toxic 'lat' on proxy 'cli'" in run("toxic", "add", "-n", "lat", "-t", "latency", "-a", "latency=100", "cli")
    _assert_near(_rtt_ms(address) - base, 100)
    assert "Updated toxic 'lat' on proxy 'cli'" in run("toxic", "update", "-n", "lat", "-a", "latency=200", "cli")
    _assert_near(_rtt_ms(address) - base, 200)
    assert "Removed toxic 'lat' on proxy 'cli'" in run("toxic", "remove", "-n", "lat", "cli")
    _assert_near(_rtt_ms(address) - base, 0)
    assert "HTTP 400" in run("toxic", "add", "-t", "latency", "-a", "latncy=100", "cli", ok=False)
    assert "is now disabled" in run("toggle", "cli")
    assert _refused(address)
    assert "is now enabled" in run("toggle", "cli")
    _assert_near(_rtt_ms(address) - base, 0)
    assert "cli" in run("list") and "latency" not in run("inspect", "cli")
    assert "Deleted proxy cli" in run("delete", "cli")
    assert _refused(address)
    assert "HTTP 404: proxy not found" in run("inspect", "cli", ok=False)


# -- 2. the harness against a real Toxiproxy --------------------------------------------------------
@pytest.fixture(scope="module")
def real_toxiproxy(echo, tmp_path_factory):
    """A toxiproxy-server on free loopback ports with one proxy, "echo", from a -config file; killed by pid after."""
    server = require_toxiproxy().server
    work = tmp_path_factory.mktemp("toxiproxy")
    port, listen = free_port(), free_port()
    config = work / "proxies.json"
    config.write_text(json.dumps([{"name": "echo", "listen": f"127.0.0.1:{listen}", "upstream": f"127.0.0.1:{echo[1]}"}]))
    with open(work / "server.log", "wb") as log:
        proc = subprocess.Popen([server, "-host", "127.0.0.1", "-port", str(port), "-config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = ProxyClient(f"http://127.0.0.1:{port}")
        client.wait_ready(15)
        assert "server" not in client.version()  # a real Toxiproxy, not this project's proxy
        yield client, ("127.0.0.1", listen)
    finally:
        stop_group(proc)


def _toxiproxy_fault(name, raw, control, route="echo"):
    cls = fault_type(name)
    params, problems = build_params(cls, raw)
    assert problems == []
    target = Target("link", TargetKind.PROXY, {"name": route, "control": control, "server": "toxiproxy"})
    return cls(params, target), cls.check_plan(params, target) + cls.preflight(params, target)


def _inject(fault):
    fault.inject(FaultContext(log=lambda text: None))


def _revert(fault, client):
    fault.revert(FaultContext())
    fault.verify_reverted(FaultContext())
    assert client.toxics("echo") == [] and client.route("echo")["enabled"] is True


def test_harness_checks_a_real_toxiproxy_before_the_run(real_toxiproxy):
    client, _ = real_toxiproxy
    assert _toxiproxy_fault("latency", {"latency_ms": 10}, client.control_url)[1] == []
    assert _toxiproxy_fault("latency", {"latency_ms": 10}, client.control_url, route="kafka")[1] == [
        f"target 'link': the proxy at {client.control_url} has no proxy 'kafka'; proxies: echo"]
    assert _toxiproxy_fault("partition", {}, client.control_url)[1] == [
        "target 'link' is a real Toxiproxy (server: toxiproxy), which has no 'partition' toxic; "
        "this fault needs the harness's own proxy (server: harness)"]


def test_harness_latency_on_a_real_toxiproxy(real_toxiproxy):
    client, address = real_toxiproxy
    base = _rtt_ms(address)
    fault, problems = _toxiproxy_fault("latency", {"latency_ms": 100}, client.control_url)
    assert problems == []
    _inject(fault)
    try:
        assert [t["attributes"] for t in client.toxics("echo")] == [{"latency": 100, "jitter": 0}]
        _assert_near(_rtt_ms(address) - base, 100)
    finally:
        _revert(fault, client)
    _assert_near(_rtt_ms(address) - base, 0)


def test_harness_bandwidth_on_a_real_toxiproxy(real_toxiproxy):
    client, address = real_toxiproxy
    fault, problems = _toxiproxy_fault("bandwidth", {"rate_kbps": 4000}, client.control_url)  # 500 KB/s
    assert problems == []
    size = 250_000
    _inject(fault)
    try:
        assert [t["attributes"] for t in client.toxics("echo")] == [{"rate": 500}]
        with socket.create_connection(address, timeout=10) as sock:
            sender = threading.Thread(target=sock.sendall, args=(b"b" * size,))
            start = time.perf_counter()
            sender.start()
            got = 0
            while got < size:
                chunk = sock.recv(65536)
                assert chunk
                got += len(chunk)
            elapsed = time.perf_counter() - start
            sender.join()
    finally:
        _revert(fault, client)
    measured_kbps = size * 8 / 1000 / elapsed
    assert abs(measured_kbps - 4000) <= 800, f"{measured_kbps:.0f} kbps; configured 4000"


def test_harness_reset_peer_blackhole_and_down_on_a_real_toxiproxy(real_toxiproxy):
    client, address = real_toxiproxy
    fault, _ = _toxiproxy_fault("reset_peer", {"timeout_ms": 0}, client.control_url)
    _inject(fault)
    try:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(b"x")
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
    finally:
        _revert(fault, client)

    fault, _ = _toxiproxy_fault("blackhole", {"timeout_ms": 200}, client.control_url)
    _inject(fault)
    try:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(b"x")
            assert sock.recv(10) == b""  # swallowed, then closed after the timeout
    finally:
        _revert(fault, client)

    fault, problems = _toxiproxy_fault("down", {}, client.control_url)
    assert problems == []
    _inject(fault)
    try:
        assert client.route("echo")["enabled"] is False and _refused(address)
    finally:
        _revert(fault, client)
    assert _rtt_ms(address) >= 0
