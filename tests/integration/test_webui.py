"""The game-day view in real headless Chromium, driven over the Chrome DevTools Protocol, against a real Locust
web UI running the demo platform's locustfile with a scenario that pauses the real consumer process.

Chromium and Locust are started by pid in their own sessions and ended by pid; the demo platform is the
`fresh_platform` fixture. Screenshots go to test-artifacts/ (gitignored).
"""
from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket

from tests.helpers import LOCUST, ROOT, free_port, require_chromium, stop_group

pytestmark = pytest.mark.chromium

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                  "--no-first-run", "--disable-component-update", "--disable-sync", "--remote-debugging-port=0",
                  "--remote-debugging-address=127.0.0.1", "--window-size=1400,1000"]


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    """Poll `check()` until it returns something truthy; fail naming `what` (and the last value) on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last value: {value!r}")


class Chromium:
    """Headless Chromium with one page, driven by CDP commands over its websocket."""

    def __init__(self, user_data_dir: Path):
        user_data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.ws = None
        self._id = 0
        port_file = user_data_dir / "DevToolsActivePort"
        text = wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, "Chromium's DevToolsActivePort")
        port = int(text.split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:  # events arrive interleaved with answers; skip them
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.js("document.readyState") == "complete", 20, f"{url} to load")

    def click_button(self, text: str, timeout_s: float = 45) -> None:  # React draws late on a busy machine
        """Click the first button (or tab) whose visible text is `text`, once React has drawn it, as a user would."""
        script = f"""(() => {{
            const el = [...document.querySelectorAll('button, [role=tab]')].find(e => e.textContent.trim() === {json.dumps(text)});
            if (!el) return false; el.scrollIntoView(); el.click(); return true; }})()"""
        deadline = time.monotonic() + timeout_s
        while not self.js(script):
            assert time.monotonic() < deadline, f"no button {text!r} on {self.js('location.href')} within {timeout_s}s"
            time.sleep(0.2)

    def type_into(self, selector: str, text: str) -> None:
        """Replace an input's text through real keyboard-style input, so React sees the change."""
        assert self.js(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); if (!el) return false; "
                       "el.scrollIntoView(); el.focus(); el.select(); return true; })()"), selector
        self.call("Input.insertText", text=text)

    def text(self) -> str:
        return self.js("document.body.innerText") or ""

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def chromium(tmp_path):
    require_chromium()
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()


class LocustUI:
    """`locust -f locustfiles/platform.py` with its web UI on a free port, in its own session, ended by pid."""

    def __init__(self, tmp_path: Path, scenario: Path, host: str, env: dict[str, str], kafka: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "locust.log"
        self.report_dir = tmp_path / "reports"
        args = [LOCUST, "-f", "locustfiles/platform.py", "--web-host", "127.0.0.1", "--web-port", str(self.port),
                "--chaos-plan", str(scenario), "--chaos-metrics-port", "0", "--host", host, "--kafka-bootstrap", kafka,
                "--chaos-report-dir", str(self.report_dir), "--chaos-journal", str(tmp_path / "journal.json"),
                "-u", "2", "-r", "2"]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._ready, 30, f"the Locust web UI on {self.url}\n{self.log()}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"locust exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.url + "/stats/requests", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.load(resp)

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_group(self.proc)


def proc_state(pid: int) -> str:
    """The one-letter state in /proc/PID/stat: 'T' when stopped by SIGSTOP."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def chaos_tab_row(browser: Chromium, name: str) -> list[str] | None:
    """The cells of the Chaos tab's row whose Name column is `name` (None when it is not shown)."""
    return browser.js(f"""(() => {{
        const row = [...document.querySelectorAll('tr')].map(tr => [...tr.cells].map(c => c.innerText.trim()))
            .find(cells => cells[1] === {json.dumps(name)});
        return row || null; }})()""")


def test_game_day_in_chromium_shows_the_active_fault_and_aborts_it(fresh_platform, chromium, tmp_path):
    consumer_pidfile = Path(fresh_platform.pidfiles["consumer"])
    consumer_pid = int(consumer_pidfile.read_text().split()[0])
    scenario = tmp_path / "pause-consumer.yml"
    scenario.write_text(
        "name: webui-pause-consumer\n"
        "targets:\n"
        f"  consumer: {{process: {{pidfile: {json.dumps(str(consumer_pidfile))}}}}}\n"
        "faults:\n"
        "  - {at: 3s, for: 60s, fault: pause, target: consumer}\n"
        "slos:\n"
        "  - {name: ingest-errors, metric: error_rate, during: fault, max: 50%}\n")
    locust = LocustUI(tmp_path, scenario, fresh_platform.api_url, fresh_platform.env(), fresh_platform.kafka_bootstrap)
    try:
        # Start the run from the form, as a user would: the form is prefilled from -u/-r/--host/--chaos-plan.
        chromium.open(locust.url + "/")
        wait_for(lambda: "Start new load test" in chromium.text(), 20, "the start form")
        chromium.click_button("Start")
        wait_for(lambda: locust.get_json("/stats/requests")["state"] == "running", 20, "the run to start")

        chromium.click_button("Download Data")  # Locust's own tab links to the live page
        href = wait_for(lambda: chromium.js("[...document.querySelectorAll('a')].find(a => a.textContent.startsWith("
                        "'Chaos: live game-day view'))?.getAttribute('href')"), 10, "the /chaos link in Download Data")
        assert href == "/chaos/"
        chromium.click_button("Chaos")
        row = wait_for(lambda: (chaos_tab_row(chromium, "f0#1 pause consumer") or [None] * 3)[2] == "active"
                       and chaos_tab_row(chromium, "f0#1 pause consumer"), 20,
                       f"the pause to show as active in the Chaos tab\n{chromium.text()[-1500:]}\n{locust.log()}")
        assert row[0] == "Timeline" and row[3].startswith("planned t=3.0s → t=63.0s; since t=")
        assert chaos_tab_row(chromium, "pause consumer")[:3] == ["Active now", "pause consumer", "active"]
        assert proc_state(consumer_pid) == "T"  # the fault is real, not just drawn
        wait_for(lambda: (chaos_tab_row(chromium, "ingest-errors (error_rate)") or [None] * 3)[2] in ("PASS", "FAIL", "N/A"),
                 15, "a provisional SLO status in the Chaos tab")
        tab_png = chromium.screenshot(ARTIFACTS / "webui-chaos-tab.png")

        # The live page linked from the tab and the Download Data tab: Abort chaos.
        chromium.open(locust.url + "/chaos/")
        wait_for(lambda: chromium.js("document.querySelector('#timeline tr[data-oid=\"f0#1\"]')?.dataset.state") == "active",
                 10, "the /chaos page to show the active pause")
        assert chromium.js("document.getElementById('abort').disabled") is False
        chromium.click_button("Abort chaos")
        wait_for(lambda: chromium.js("document.querySelector('#timeline tr[data-oid=\"f0#1\"]')?.dataset.state") == "reverted",
                 10, f"the pause to show as reverted after Abort\n{chromium.text()[-1500:]}")
        assert chromium.js("document.querySelectorAll('#active tr[data-oid]').length") == 0
        assert "Chaos aborted" in chromium.js("document.getElementById('abort-result').textContent")
        assert wait_for(lambda: proc_state(consumer_pid) != "T", 5, "the consumer to resume")
        page_png = chromium.screenshot(ARTIFACTS / "webui-chaos-page.png")

        # The React tab agrees, and the load keeps running.
        chromium.open(locust.url + "/?tab=chaos")
        wait_for(lambda: (chaos_tab_row(chromium, "f0#1 pause consumer") or [None] * 3)[2] == "reverted", 15,
                 "the Chaos tab to show the pause reverted")
        assert locust.get_json("/stats/requests")["state"] == "running"
        assert "chaos aborted (aborted from the web UI)" in locust.log()

        # Stop from Locust's own button: the run is judged and its reports are linked and served.
        chromium.click_button("Stop")
        wait_for(lambda: chaos_tab_row(chromium, "chaos-report.html"), 20,
                 f"the reports in the Chaos tab after Stop\n{locust.log()}")
        chromium.open(locust.url + "/chaos/")
        links = wait_for(lambda: chromium.js("[...document.querySelectorAll('#reports a')].map(a => a.href)"), 10,
                         "report links on /chaos")
        assert sorted(link.rsplit("/", 1)[1] for link in links) == [
            "chaos-report.html", "chaos-report.json", "chaos-report.md", "chaos-report.xml"]
        html_link = next(link for link in links if link.endswith(".html"))
        fetched = chromium.js(f"fetch({json.dumps(html_link)}).then(async r => [r.status, (await r.text()).slice(0, 400)])")
        assert fetched[0] == 200 and "<html" in fetched[1].lower()
        assert (locust.report_dir / "chaos-report.html").is_file()
        for png in (tab_png, page_png):
            width, height = png_size(png)
            assert (width, height) == (1400, 1000) and png.stat().st_size > 20_000, png
    finally:
        locust.stop()
        # Never leave the platform's consumer frozen, whatever failed above.
        try:
            if proc_state(consumer_pid) == "T":
                os.kill(consumer_pid, signal.SIGCONT)
        except (FileNotFoundError, ProcessLookupError):
            pass


def test_invalid_scenario_chosen_in_the_form_is_refused_and_no_run_starts(chromium, tmp_path):
    scenario = tmp_path / "valid.yml"
    scenario.write_text("name: valid\nslos:\n  - {name: errors, metric: error_rate, during: all, max: 100%}\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nfaults:\n  - {at: 1s, for: 2s, fault: pause, target: nope}\n")
    locust = LocustUI(tmp_path, scenario, f"http://127.0.0.1:{free_port()}", {}, f"127.0.0.1:{free_port()}")
    try:
        chromium.open(locust.url + "/")
        wait_for(lambda: "Start new load test" in chromium.text(), 20, "the start form")
        chromium.click_button("Custom parameters")
        wait_for(lambda: chromium.js("document.querySelector('input[name=chaosPlan]')?.offsetParent !== null"), 5,
                 "the chaos_plan field to show")
        chromium.type_into("input[name=chaosPlan]", str(bad))
        chromium.click_button("Start")
        message = f"Invalid scenario, run not started: {bad}:3 faults[0] (pause): unknown target 'nope'; declared targets: (none)"
        wait_for(lambda: message in chromium.text(), 10, f"the validation message in the form\n{chromium.text()[-1500:]}")
        chromium.js("window.scrollTo(0, document.body.scrollHeight)")  # the message sits above the Start button
        chromium.screenshot(ARTIFACTS / "webui-invalid-scenario.png")
        time.sleep(1.0)  # give a wrongly started run the time to show itself
        assert locust.get_json("/stats/requests")["state"] == "ready"
        assert "Start new load test" in chromium.text()
        assert locust.get_json("/chaos/state")["scenario"] == "valid"  # the previous, valid choice stays
    finally:
        locust.stop()
