"""Bench locustfile for phase_edges: FastHttpUser paced at BENCH_PACE requests per second per user (default 50), GET
against the target (nginx), with the harness on.

Paced, not flat out: a user with no wait sends as fast as its CPU share allows, so on a shared machine its rate
follows whatever else runs, and a per-phase rate change measures that, not the phase edges. At 10 x 50 req/s Locust
needs a few percent of a core, so the offered load stays constant while other work comes and goes.
"""
import os

import chaos_events  # noqa: F401  (turns the harness on)
from locust import FastHttpUser, constant_throughput, task

PACE = float(os.environ.get("BENCH_PACE", "50") or 50)


class PacedUser(FastHttpUser):
    wait_time = constant_throughput(PACE)

    @task
    def get(self):
        self.client.get("/")
