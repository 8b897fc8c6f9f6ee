"""Entry locustfile for the demo platform (or any platform with the same API): HTTP users plus Kafka producers.

`locust -f locustfiles/platform.py --host http://127.0.0.1:8000 --kafka-bootstrap 127.0.0.1:19092`
Importing chaos_events turns the harness on (options, faults on a timeline, verdict). Shared code lives in
chaos_events, never here: Locust imports every *.py under a -f directory as a locustfile.
"""
from __future__ import annotations

import sys

# Locust imports this file as module "platform" and puts it in sys.modules, shadowing the standard library's
# `platform` for every later import (requests, docker, prometheus_client use it). Put the real one back first.
if __name__ == "platform" and sys.modules.get("platform") is sys.modules.get(__name__):
    import importlib.util as _ilu
    import os as _os
    import sysconfig as _sysconfig

    _spec = _ilu.spec_from_file_location("platform", _os.path.join(_sysconfig.get_path("stdlib"), "platform.py"))
    _stdlib_platform = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_stdlib_platform)
    sys.modules["platform"] = _stdlib_platform

import random
import time
from collections import deque

import chaos_events  # noqa: F401  (enables the harness plugin)
from chaos_events.load.payloads import EventGenerator, EVENT_TYPES, SOURCES, new_producer_id
from chaos_events.locust_plugin.users import KafkaUser, acknowledge
from locust import FastHttpUser, between, task

READ_BACK_AFTER_S = 2.0  # the consumer needs a moment between the 202 and the row in the store


class ApiUser(FastHttpUser):
    """A client of the HTTP API: ingests events, reads its own writes back, explores, checks health and stats."""

    weight = 3
    wait_time = between(0.05, 0.2)
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self):
        self.producer_id = new_producer_id("api")
        self.events = EventGenerator(self.producer_id)
        self.acked: deque[tuple[float, str]] = deque(maxlen=1000)

    @task(10)
    def ingest(self):
        event = self.events.next()
        with self.client.post("/api/events", json=event, name="/api/events", catch_response=True) as resp:
            if resp.status_code == 202:
                resp.success()
                acknowledge("api", self.producer_id, self.events.seq)
                self.acked.append((time.monotonic(), event["id"]))
            else:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:120]}")

    def _settled_ids(self) -> list[str]:
        cutoff = time.monotonic() - READ_BACK_AFTER_S
        return [event_id for acked_at, event_id in self.acked if acked_at <= cutoff]

    @task(4)
    def read_own_event(self):
        settled = self._settled_ids()
        if not settled:
            return self.explore()
        event_id = random.choice(settled[-200:])
        with self.client.get(f"/api/events/{event_id}", name="/api/events/[id]", catch_response=True) as resp:
            if resp.status_code == 200:
                resp.success()
            elif resp.status_code == 404:
                resp.failure(f"acknowledged event not in the store after {READ_BACK_AFTER_S:g} s")
            else:
                resp.failure(f"HTTP {resp.status_code}")

    @task(1)
    def lookup_own_events(self):
        settled = self._settled_ids()[-50:]
        if not settled:
            return
        with self.client.post("/api/events/lookup", json={"ids": settled}, name="/api/events/lookup", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            missing = len(set(settled) - set(resp.json().get("found", [])))
            if missing:
                resp.failure(f"{missing} of {len(settled)} acknowledged events missing from the store")
            else:
                resp.success()

    @task(3)
    def explore(self):
        params = {"limit": random.choice((10, 25, 50))}
        if random.random() < 0.6:
            params["type"] = random.choice(EVENT_TYPES)
        if random.random() < 0.3:
            params["source"] = random.choice(SOURCES)
        self.client.get("/api/explorer", params=params, name="/api/explorer")

    @task(1)
    def health(self):
        self.client.get("/health", name="/health")

    @task(1)
    def admin_stats(self):
        self.client.get("/admin/stats", name="/admin/stats")


class EventProducerUser(KafkaUser):
    """A service that writes straight to Kafka: realistic events, keyed by id, with ledger headers."""

    weight = 1
    wait_time = between(0.05, 0.2)
    producer_prefix = "kafka"

    def on_start(self):
        self.events = EventGenerator(self.producer_id)

    @task
    def produce_one(self):
        self.produce_event(self.events.next())
