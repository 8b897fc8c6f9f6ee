"""Bench locustfile: the harness's KafkaUser producing small JSON events as fast as it can (kafka_user benchmark).

Use with `-f bench/_lf_kafka.py`. A measuring greenlet counts acknowledged messages (successful KAFKA request events)
and this process's CPU time over a steady window after a warm-up, and writes them to $BENCH_OUT as JSON; the plain
producer loop (bench/_kafka_plain.py) measures the same window the same way. $BENCH_MESSAGES_PER_TASK (default 1)
messages per task: more than 1 uses `produce_events`, one call per task, each message still reported on its own.
$BENCH_CORE names the core the process is pinned to: its busy time in the window is recorded (CPU contention).
"""
import json
import os
import time

import gevent
from locust import events, task

from bench.common import core_busy_seconds  # stdlib only; the driver sets PYTHONPATH to the repository
from chaos_events.locust_plugin.users import KafkaUser

WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "2"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "6"))
MESSAGES_PER_TASK = int(os.environ.get("BENCH_MESSAGES_PER_TASK", "1"))
CORE = os.environ.get("BENCH_CORE")


def _acked(environment) -> int:
    # Read from Locust's own stats rather than adding a request listener that would cost the measured side.
    entry = environment.stats.get("produce bench", "KAFKA")
    return entry.num_requests - entry.num_failures


def _failed(environment) -> int:
    return environment.stats.get("produce bench", "KAFKA").num_failures


def _measure(environment):
    gevent.sleep(WARMUP_S)
    a0, c0, t0, b0, f0 = _acked(environment), time.process_time(), time.monotonic(), _core_busy(), _failed(environment)
    gevent.sleep(WINDOW_S)
    a1, c1, t1, b1 = _acked(environment), time.process_time(), time.monotonic(), _core_busy()
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump({"acked": a1 - a0, "cpu_s": c1 - c0, "wall_s": t1 - t0, "core_busy_s": b1 - b0,
                   "failed": _failed(environment) - f0,
                   "messages_per_task": MESSAGES_PER_TASK}, f)
    if environment.runner is not None:  # measured: end the run now (its --run-time is only a safety net)
        gevent.spawn(environment.runner.quit)


def _core_busy() -> float:
    return core_busy_seconds(int(CORE)) if CORE is not None else 0.0


@events.test_start.add_listener
def _start(environment, **_kwargs):
    gevent.spawn(_measure, environment)


BACKLOG_LIMIT = 8000  # of queue.buffering.max.messages 20000: wait as the plain loop does, never fail on a full queue


class BenchProducer(KafkaUser):
    def wait_time(self) -> float:
        return 0.005 if self.backlog() > BACKLOG_LIMIT else 0.0

    @task
    def send(self):
        if MESSAGES_PER_TASK == 1:
            seq = self.next_seq()
            self.produce_event({"id": f"{self.producer_id}.{seq}", "type": "bench.event", "n": seq, "pad": "x" * 64})
            return
        self.produce_events(self._event(self.next_seq()) for _ in range(MESSAGES_PER_TASK))

    def _event(self, seq: int) -> dict:
        return {"id": f"{self.producer_id}.{seq}", "type": "bench.event", "n": seq, "pad": "x" * 64}
