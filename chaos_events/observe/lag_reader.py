"""Consumer lag, read in a child process of its own, so that librdkafka can never take the Locust master down.

librdkafka asserts and aborts the whole process on some races with a broker that dies mid-request (for example
`eonce->refcnt > 0` in confluentinc/librdkafka#3663), and the lag probe queries brokers exactly while a scenario
kills them. In the master, that abort would end the run with its faults still injected. Here it ends only this
child: the probe reports that sample as an error, and the next sample starts a new reader.

Protocol (one JSON object per line): the parent writes `{}` to ask; the child answers `{"lag": {"0": 12, ...}}`
or `{"error": "..."}`. The child exits at end of input. Run as `python -m chaos_events.observe.lag_reader
BOOTSTRAP GROUP TOPIC TIMEOUT_S`.

The parent side waits with select and reads its pipe, so under gevent (patched select) it yields instead of blocking;
it must be called from a greenlet, not a native thread. Must not import locust, gevent or
prometheus_client.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

__all__ = ["LagReader", "LagReaderError", "read_lag"]


class LagReaderError(RuntimeError):
    """The reader could not answer: a Kafka error, a timeout, or the child died (it is restarted next time)."""


def read_lag(consumer: Any, topic: str, timeout_s: float) -> dict[int, int]:
    """Lag per partition of the consumer's group on `topic`: end offset minus committed offset (a partition without
    a commit counts from its low watermark). Committed offsets come from the group's own OffsetFetch, not the admin
    API (librdkafka's ListConsumerGroupOffsets is where the abort of #3663 was seen). The consumer never
    subscribes, so it never joins the group, and it commits nothing."""
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(topic, timeout=timeout_s)
    topic_meta = metadata.topics.get(topic)
    if topic_meta is None or topic_meta.error is not None:
        raise LookupError(f"topic '{topic}' not found" + (f": {topic_meta.error}" if topic_meta else ""))
    partitions = sorted(topic_meta.partitions)
    committed = {tp.partition: tp.offset
                 for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)}
    lag: dict[int, int] = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        offset = committed.get(p, -1)
        lag[p] = max(0, high - (offset if offset >= 0 else low))
    return lag


class LagReader:
    """The parent's handle on one reader child. `read()` starts the child when there is none (or it died).

    Invariant: at most one child at a time, and `close()` ends it by its pid.
    Example: LagReader("127.0.0.1:9092", "events-store", "events", 5.0).read() == {0: 3, 1: 0, 2: 7}
    """

    def __init__(self, bootstrap: str, group: str, topic: str, timeout_s: float):
        self.argv = [sys.executable, "-m", __name__, bootstrap, group, topic, repr(float(timeout_s))]
        self.timeout_s = timeout_s
        self._child: subprocess.Popen | None = None

    def read(self) -> dict[int, int]:
        child = self._ensure_child()
        try:
            child.stdin.write(b"{}\n")
            child.stdin.flush()
        except OSError:
            raise self._died(child) from None
        line = self._answer(child, deadline=time.monotonic() + self.timeout_s * 4 + 5)
        answer = json.loads(line)
        if "error" in answer:
            raise LagReaderError(answer["error"])
        return {int(p): int(n) for p, n in answer["lag"].items()}

    def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            child.stdin.close()  # end of input: the child closes its consumer and exits
        except OSError:
            pass
        try:
            child.wait(timeout=self.timeout_s + 2)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()

    def _ensure_child(self) -> subprocess.Popen:
        if self._child is not None:
            if self._child.poll() is None:
                return self._child
            raise self._died(self._child)  # it died between samples: say so once, the next read starts a new one
        self._child = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        return self._child

    def _answer(self, child: subprocess.Popen, deadline: float) -> bytes:
        buffer = b""
        fd = child.stdout.fileno()
        while not buffer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self._child = None
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                raise LagReaderError(f"the lag reader did not answer within {self.timeout_s * 4 + 5:g}s; restarted")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._died(child)
                buffer += chunk
        return buffer

    def _died(self, child: subprocess.Popen) -> LagReaderError:
        self._child = None
        code = child.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return LagReaderError(f"the lag reader process died ({how}); a new one starts at the next sample")


def _serve(bootstrap: str, group: str, topic: str, timeout_s: float) -> None:
    from confluent_kafka import Consumer

    from chaos_events.observe.ledger import QUIET_KAFKA_LOG, kafka_error_text

    consumer = Consumer({"bootstrap.servers": bootstrap, "logger": QUIET_KAFKA_LOG, "group.id": group,
                         "enable.auto.commit": False})
    try:
        for _request in sys.stdin.buffer:
            try:
                answer: dict[str, Any] = {"lag": {str(p): n for p, n in read_lag(consumer, topic, timeout_s).items()}}
            except Exception as exc:  # KafkaException, LookupError: all mean "could not read the lag"
                answer = {"error": kafka_error_text(exc) or type(exc).__name__}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        consumer.close()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
