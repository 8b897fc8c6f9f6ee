"""Freezing the broker (SIGSTOP) under load: health turns 503, Kafka failures show up, HTTP users keep going,
and everything recovers after SIGCONT. Real Tansu, real proxy, real API and consumer, the real locustfile.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import defaultdict

from chaos_events.demo.supervisor import read_pidfile
from tests.helpers import LOCUST, ROOT, stop_group

LOCUSTFILE = str(ROOT / "locustfiles" / "platform.py")
BASELINE_S = 6.0
PAUSE_S = 8.0
AFTER_RECOVERY_S = 4.0


def health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_health(url: str, status: int, timeout: float) -> tuple[float | None, dict]:
    """Seconds until /health answers `status` (None if it never did), and the last body."""
    started = time.monotonic()
    body: dict = {}
    while time.monotonic() - started < timeout:
        code, body = health(url)
        if code == status:
            return time.monotonic() - started, body
        time.sleep(0.1)
    return None, body


def per_second(history_csv: str) -> dict[str, dict[int, tuple[int, int]]]:
    """name -> {unix second: (cumulative requests, cumulative failures)} from --csv-full-history."""
    series: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
    with open(history_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            series[f"{row['Type']} {row['Name']}"][int(row["Timestamp"])] = (int(row["Total Request Count"]), int(row["Total Failure Count"]))
    return series


def delta(points: dict[int, tuple[int, int]], start: float, end: float) -> tuple[int, int]:
    """(requests, failures) between two wall-clock times, from the cumulative samples just inside them."""
    inside = sorted(t for t in points if start <= t <= end)
    if len(inside) < 2:
        return 0, 0
    (r0, f0), (r1, f1) = points[inside[0]], points[inside[-1]]
    return r1 - r0, f1 - f0


def test_broker_pause_under_load(fresh_platform, tmp_path):
    platform = fresh_platform
    broker_pid = read_pidfile(platform.pidfiles["broker"])
    assert broker_pid and health(platform.api_direct_url)[0] == 200
    prefix = tmp_path / "pause"
    out = open(tmp_path / "locust.out", "w+")
    locust = subprocess.Popen(
        [LOCUST, "-f", LOCUSTFILE, "--headless", "-u", "8", "-r", "8", "--run-time", "90s",
         "--host", platform.api_url, "--kafka-bootstrap", platform.kafka_bootstrap, "--csv", str(prefix),
         "--csv-full-history", "--only-summary", "--chaos-metrics-port", "0"],
        cwd=ROOT, env={**os.environ, **platform.env(), "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        time.sleep(BASELINE_S)
        assert locust.poll() is None, open(tmp_path / "locust.out").read()[-3000:]
        paused_at = time.time()
        os.kill(broker_pid, signal.SIGSTOP)
        try:
            detected_s, degraded = wait_health(platform.api_direct_url, 503, timeout=5)
            assert detected_s is not None, f"/health still 200 5 s into the broker pause: {degraded}"
            assert degraded["status"] == "degraded" and degraded["dependencies"]["kafka"]["ok"] is False
            time.sleep(max(0.0, paused_at + PAUSE_S - time.time()))
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        resumed_at = time.time()
        recovered_s, body = wait_health(platform.api_direct_url, 200, timeout=20)
        assert recovered_s is not None, f"/health not 200 within 20 s of SIGCONT: {body}"
        recovered_at = time.time()
        time.sleep(AFTER_RECOVERY_S)
        locust.send_signal(signal.SIGTERM)  # Locust stops gracefully on SIGTERM and writes its CSV files
        locust.wait(timeout=30)
    finally:
        stop_group(locust)
        out.seek(0)
        output = out.read()
        out.close()
    assert locust.returncode in (0, 1), output[-3000:]  # 1: Locust saw failures, as it should

    series = per_second(f"{prefix}_stats_history.csv")
    kafka = series["KAFKA produce events"]
    ingest = series["POST /api/events"]
    reads = {k: v for k, v in series.items() if k.split(" ", 1)[1] in ("/health", "/api/explorer", "/admin/stats", "/api/events/[id]")}

    # The Kafka user's failures (message timeouts while the broker was frozen) are in Locust's stats.
    assert delta(kafka, paused_at, resumed_at + 3)[1] > 0, kafka
    assert delta(ingest, paused_at, resumed_at)[1] > 0, ingest

    # HTTP users keep a steady rate: the API fails fast instead of holding every user for seconds.
    def read_rate(start, end):
        return sum(delta(points, start, end)[0] for points in reads.values()) / (end - start)

    baseline = read_rate(paused_at - BASELINE_S + 2, paused_at)
    during = read_rate(paused_at + 4, resumed_at)
    assert baseline > 0 and during >= 0.3 * baseline, (baseline, during)

    # Recovery: after SIGCONT, writes succeed again on both paths.
    end = recovered_at + AFTER_RECOVERY_S + 1
    k_req, k_fail = delta(kafka, recovered_at, end)
    i_req, i_fail = delta(ingest, recovered_at, end)
    assert k_req - k_fail > 0 and i_req - i_fail > 0, (kafka, ingest)
