"""The baseline of the kafka_user benchmark: a plain confluent-kafka producer loop, no Locust, no gevent.

`python -m bench._kafka_plain BOOTSTRAP TOPIC OUT_JSON`. Same producer settings as chaos_events.locust_plugin.users, the same
event shape, keys and headers; produce, poll(0) after each, poll(10 ms) when the queue is full. Counts delivery
reports, this process's CPU time and its core's busy time ($BENCH_CORE) over the same warm-up + window as
bench/_lf_kafka.py.
"""
import json
import os
import sys
import time

from confluent_kafka import Producer

from bench.common import core_busy_seconds
from chaos_events.locust_plugin.users import PRODUCER_CONFIG

WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "2"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "6"))
CORE = os.environ.get("BENCH_CORE")


def _core_busy() -> float:
    return core_busy_seconds(int(CORE)) if CORE is not None else 0.0


def main(bootstrap: str, topic: str, out: str) -> None:
    producer = Producer({**PRODUCER_CONFIG, "bootstrap.servers": bootstrap, "client.id": "bench-plain"})
    acked = [0]
    encode = json.JSONEncoder(separators=(",", ":")).encode  # as chaos_events.locust_plugin.users does

    def delivered(err, _msg):
        if err is None:
            acked[0] += 1

    start = time.monotonic()
    mark = None
    seq = 0
    while True:
        now = time.monotonic()
        if mark is None and now - start >= WARMUP_S:
            mark = (acked[0], time.process_time(), now, _core_busy())
        if mark is not None and now - mark[2] >= WINDOW_S:
            break
        seq += 1
        event_id = f"plain-{os.getpid()}.{seq}"
        value = encode({"id": event_id, "type": "bench.event", "n": seq, "pad": "x" * 64}).encode()
        headers = [("chaos-producer", f"plain-{os.getpid()}".encode()), ("chaos-seq", str(seq).encode())]
        try:
            producer.produce(topic, value=value, key=event_id.encode(), headers=headers, on_delivery=delivered)
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
    result = {"acked": acked[0] - mark[0], "cpu_s": time.process_time() - mark[1], "wall_s": time.monotonic() - mark[2],
              "core_busy_s": _core_busy() - mark[3]}
    producer.flush(5)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
