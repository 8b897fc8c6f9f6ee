"""Bench locustfile: FastHttpUser, no wait, GET against the target (nginx). Used by harness_overhead, fault_timing,
revert_latency, exporter_scrape and scale, always with `-f bench/_lf_http.py` (never a directory).

The same file serves both sides of a comparison: with BENCH_HARNESS=1 it imports chaos_events (the whole harness
turns on) and acknowledges every 200 to the write ledger, the way a user of the harness records writes; without it,
chaos_events is never imported. BENCH_NAMES=N spreads requests over N distinct request names. BENCH_STOP_AFTER=N
makes each user stop after N requests and quits the runner (with 1 user: exactly N requests; harness_instructions).
"""
import os

import gevent
from locust import FastHttpUser, constant, task
from locust.exception import StopUser

HARNESS = os.environ.get("BENCH_HARNESS") == "1"
NAMES = int(os.environ.get("BENCH_NAMES", "0") or 0)
STOP_AFTER = int(os.environ.get("BENCH_STOP_AFTER", "0") or 0)

if HARNESS:
    import chaos_events  # noqa: F401  (turns the harness on)
    from chaos_events.load.acks import acknowledge
else:
    acknowledge = None


class BenchUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.seq = 0
        self.producer = f"bench-{id(self):x}"

    @task
    def get(self):
        self.seq += 1
        path = f"/item/{self.seq % NAMES}" if NAMES else "/"
        response = self.client.get(path)
        if acknowledge is not None and response.status_code == 200:
            acknowledge("api", self.producer, self.seq)
        if STOP_AFTER and self.seq >= STOP_AFTER:
            # quit() stops every user greenlet, this one included: run it from its own greenlet, and stop here.
            gevent.spawn(self.environment.runner.quit)
            raise StopUser()
