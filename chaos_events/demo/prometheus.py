"""A local Prometheus for the embedded game day, so its `alerts_fired` SLO is judged rather than "not verifiable".

When a `prometheus` binary is on PATH (or at $PROMETHEUS_BIN), `python -m chaos_events.demo gameday` starts it on
127.0.0.1 (a free port, a temporary data directory) with the project's alert rules (dashboards/prometheus/alerts.yml)
and a scrape of the harness's exporter (dashboards/prometheus/prometheus-local.yml, 1 s intervals), passes
`--chaos-prometheus-url` to Locust, and stops it by pid at the end. Without one it says, in one line, how to get it.

Standard library and chaos_events.errors only; never locust or gevent.

Example:
    prom = for_gameday(["--chaos-metrics-port", "9646"], free_ports=False)
    argv += prom.locust_args          # [] when no Prometheus runs
    ...
    prom.stop()
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from chaos_events.errors import ChaosError

KIT = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
CONFIG_TEMPLATE = KIT / "prometheus-local.yml"
ALERTS = KIT / "alerts.yml"
DEFAULT_EXPORTER_PORT = 9646  # --chaos-metrics-port's default
READY_TIMEOUT_S = 20.0
HOW_TO_GET_IT = "install it (Debian: apt-get install prometheus) or set PROMETHEUS_BIN"


class PrometheusError(ChaosError):
    """The local Prometheus could not start."""


def binary() -> str | None:
    """$PROMETHEUS_BIN, else `prometheus` on PATH; None when neither is there."""
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus")


def render_config(exporter_port: int, alerts: Path = ALERTS, template: Path = CONFIG_TEMPLATE) -> str:
    """prometheus-local.yml with its two placeholders filled (comment lines are left as written)."""
    values = {"${EXPORTER_TARGET}": f"127.0.0.1:{exporter_port}", "${ALERTS_FILE}": str(alerts.resolve())}
    lines = []
    for line in template.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("#"):
            for placeholder, value in values.items():
                line = line.replace(placeholder, value)
            if "${" in line:
                raise PrometheusError(f"{template}: unknown placeholder in {line.strip()!r}; expected one of: {', '.join(values)}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def option_value(argv: list[str], flag: str) -> str | None:
    """The value of `flag` in a Locust argument list (`--flag V` or `--flag=V`); the last one wins, like argparse."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


@dataclass
class LocalPrometheus:
    """A Prometheus process of ours, scraping the exporter at 127.0.0.1:exporter_port. `stop()` is idempotent."""

    url: str
    exporter_port: int
    locust_args: list[str]
    proc: subprocess.Popen | None = None
    data_dir: Path | None = None
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start(exporter_port: int, log_dir: Path, prometheus: str, port: int | None = None) -> LocalPrometheus:
    """Start Prometheus on 127.0.0.1:port (free when None) and wait until /-/ready answers 200."""
    port = port or _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-prometheus-"))
    config = data_dir / "prometheus.yml"
    config.write_text(render_config(exporter_port))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "prometheus.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    local = LocalPrometheus(url, exporter_port, ["--chaos-prometheus-url", url], proc, data_dir, log_path)
    try:
        _wait_ready(local)
    except BaseException:
        local.stop()
        raise
    return local


def _wait_ready(local: LocalPrometheus) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if local.proc.poll() is not None:
            raise PrometheusError(f"prometheus exited with code {local.proc.returncode} while starting; see {local.log_path}")
        try:
            with urllib.request.urlopen(f"{local.url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
                last = f"/-/ready answered {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"/-/ready answered {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise PrometheusError(f"prometheus not ready within {READY_TIMEOUT_S:g} s at {local.url} ({last}); see {local.log_path}")


def for_gameday(locust_args: list[str], log_dir: Path, free_ports: bool = False,
                say: Callable[[str], None] = print) -> LocalPrometheus:
    """What the game day needs: a running Prometheus and the Locust arguments that use it, or none of it.

    Nothing is started when the caller already passes --chaos-prometheus-url, when the exporter is off
    (--chaos-metrics-port 0), when the project's rules are not there, or when no prometheus binary is found;
    `say` explains the last two in one line. With free_ports, the exporter gets a free port too (unless given).
    """
    nothing = LocalPrometheus("", 0, [])
    if option_value(locust_args, "--chaos-prometheus-url"):
        return nothing
    given = option_value(locust_args, "--chaos-metrics-port")
    exporter_port = int(given) if given and given.isdigit() else (_free_port() if free_ports else DEFAULT_EXPORTER_PORT)
    if exporter_port == 0:
        return nothing
    prometheus = binary()
    if prometheus is None:
        say(f"note: no prometheus binary, so the alerts_fired SLO is not verifiable; {HOW_TO_GET_IT}")
        return nothing
    if not (CONFIG_TEMPLATE.is_file() and ALERTS.is_file()):
        say(f"note: {KIT} is missing its rules or config, so no local Prometheus; alerts_fired is not verifiable")
        return nothing
    local = start(exporter_port, log_dir, prometheus)
    if given is None:
        local.locust_args += ["--chaos-metrics-port", str(exporter_port)]
    say(f"Prometheus {local.url} scrapes the harness at 127.0.0.1:{exporter_port} with the rules of {ALERTS.name} "
        f"(log {local.log_path})")
    return local
