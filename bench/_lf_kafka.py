"""Bench locustfile: the harness's KafkaUser producing small JSON events as fast as it can (kafka_user benchmark).

Use with `-f bench/_lf_kafka.py`. A measuring greenlet counts acknowledged messages (successful KAFKA request events)
and this process's CPU time over a steady window after a warm-up, and writes them to $BENCH_OUT as JSON; the plain
producer loop (bench/_kafka_plain.py) measures the same window the same way.
"""
import json
import os
import time

import gevent
from locust import constant, events, task

from chaos_events.locust_plugin.users import KafkaUser

WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "2"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "6"))


def _acked(environment) -> int:
    # Read from Locust's own stats rather than adding a request listener that would cost the measured side.
    entry = environment.stats.get("produce bench", "KAFKA")
    return entry.num_requests - entry.num_failures


def _measure(environment):
    gevent.sleep(WARMUP_S)
    a0, c0, t0 = _acked(environment), time.process_time(), time.monotonic()
    gevent.sleep(WINDOW_S)
    a1, c1, t1 = _acked(environment), time.process_time(), time.monotonic()
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump({"acked": a1 - a0, "cpu_s": c1 - c0, "wall_s": t1 - t0}, f)


@events.test_start.add_listener
def _start(environment, **_kwargs):
    gevent.spawn(_measure, environment)


class BenchProducer(KafkaUser):
    wait_time = constant(0)

    @task
    def send(self):
        seq = self.next_seq()
        self.produce_event({"id": f"{self.producer_id}.{seq}", "type": "bench.event", "n": seq, "pad": "x" * 64})
