"""Worker-side sender of bad payloads: the `bad_payloads` fault acts from inside the load, one greenlet per fault.

Imports gevent and geventhttpclient (cooperative without monkey-patching), never locust, docker or
prometheus_client: Locust is reached only through the `fire_request` callable the plugin passes in.

The desired outcome of a bad payload is a 4xx: the platform refused it. So a 4xx is reported as a success
(exception None), and anything else as a failure that says what went wrong: `accepted bad payload (202)`,
`server error 503`, or the transport error.

Example:
    sender = BadTrafficSender(fire_request)
    sender.start("f1", "http://127.0.0.1:8000/api/events", rate_per_s=5, kinds=["invalid-json", "bom"])
    ...
    sender.stop("f1"); sender.counts()  # {"rejected_4xx": 9, "accepted": 1, "server_error": 0, "errors": 0}
"""
from __future__ import annotations

import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import gevent
import gevent.pool
from geventhttpclient import HTTPClient

from chaos_events.load.corrupt import API_KINDS, make_bad_request

OUTCOMES = ("rejected_4xx", "accepted", "server_error", "errors")
FireRequest = Callable[..., None]


class BadPayloadAccepted(Exception):
    """The platform answered 2xx/3xx to a payload it should have refused."""


class BadPayloadServerError(Exception):
    """The platform answered 5xx to a bad payload: it should refuse it with 4xx, not fail."""


def base_event_factory(seed: int | None = None) -> Callable[[], dict]:
    """Valid events with only the required fields. Ids have no `.SEQ` suffix, so the ledger never counts them."""
    from chaos_events.load.payloads import EventGenerator

    rng = random.Random(seed)
    generator = EventGenerator(f"chaos-bad-{rng.getrandbits(32):08x}", seed=seed)

    def make() -> dict:
        event = generator.next()
        event.pop("schema_version", None)  # it has a default, so removing it would not make the event invalid
        event["id"] = event["id"].replace(".", "-")
        return event

    return make


@dataclass
class _Job:
    fault_id: str
    url: str
    rate_per_s: float
    kinds: tuple[str, ...]
    counts: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    greenlet: Any = None
    pool: Any = None
    client: Any = None


class BadTrafficSender:
    """Sends bad payloads at a steady rate per active fault. Invariant: at most one greenlet per fault id;
    `counts()` keeps the outcomes of stopped faults too, so the end of a run can still read them.

    Example: BadTrafficSender(fire).start("f1", "http://127.0.0.1:8000/api/events", 10, ["invalid-json"])
    """

    def __init__(self, fire_request: FireRequest, *, timeout_s: float = 10.0, max_concurrency: int = 20,
                 seed: int | None = None, make_event: Callable[[], dict] | None = None):
        self._fire = fire_request
        self._timeout_s = timeout_s
        self._max_concurrency = max_concurrency
        self._seed = seed
        self._make_event = make_event or base_event_factory(seed)
        self._jobs: dict[str, _Job] = {}
        self._finished: dict[str, _Job] = {}

    # -- control ------------------------------------------------------------------------------------
    def start(self, fault_id: str, url: str, rate_per_s: float, kinds: Iterable[str] | None = None) -> None:
        """Begin sending to `url` (the full ingest URL). Starting an active fault id again restarts it."""
        kinds = tuple(kinds or API_KINDS)
        unknown = [k for k in kinds if k not in API_KINDS]
        if unknown:
            raise ValueError(f"unknown bad-payload kind {unknown[0]!r}; expected one of: {', '.join(API_KINDS)}")
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be above 0; got {rate_per_s}")
        self.stop(fault_id)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL; got {url!r}")
        job = _Job(fault_id, url, float(rate_per_s), kinds)
        job.client = HTTPClient(parts.hostname, parts.port, ssl=parts.scheme == "https", concurrency=self._max_concurrency,
                                connection_timeout=self._timeout_s, network_timeout=self._timeout_s,
                                headers={"User-Agent": "chaos-events bad-payloads"})
        job.pool = gevent.pool.Pool(self._max_concurrency)
        self._jobs[fault_id] = job
        job.greenlet = gevent.spawn(self._run, job)

    def stop(self, fault_id: str, grace_s: float = 2.0) -> None:
        """Stop one fault's traffic. Idempotent; requests in flight get `grace_s` to finish."""
        job = self._jobs.pop(fault_id, None)
        if job is None:
            return
        job.greenlet.kill(block=True)
        if not job.pool.join(timeout=grace_s):
            job.pool.kill(block=True)
        job.client.close()
        previous = self._finished.get(fault_id)
        if previous is not None:  # a restarted fault id keeps its earlier counts
            job.counts.update(previous.counts)
            job.statuses.update(previous.statuses)
            for kind, counter in previous.by_kind.items():
                job.by_kind.setdefault(kind, Counter()).update(counter)
        self._finished[fault_id] = job

    def stop_all(self) -> None:
        for fault_id in list(self._jobs):
            self.stop(fault_id)

    def active(self) -> list[str]:
        return sorted(self._jobs)

    # -- results ------------------------------------------------------------------------------------
    def counts(self, fault_id: str | None = None) -> dict[str, int]:
        """Outcome totals (rejected_4xx, accepted, server_error, errors) for one fault or all of them."""
        jobs = self._select(fault_id)
        total = Counter()
        for job in jobs:
            total.update(job.counts)
        return {outcome: total[outcome] for outcome in OUTCOMES}

    def counts_by_kind(self, fault_id: str | None = None) -> dict[str, dict[str, int]]:
        result: dict[str, Counter] = {}
        for job in self._select(fault_id):
            for kind, counter in job.by_kind.items():
                result.setdefault(kind, Counter()).update(counter)
        return {kind: {o: c[o] for o in OUTCOMES} for kind, c in sorted(result.items())}

    def status_counts(self, fault_id: str | None = None) -> dict[int, int]:
        """How often each HTTP status came back (transport errors have none)."""
        total = Counter()
        for job in self._select(fault_id):
            total.update(job.statuses)
        return dict(sorted(total.items()))

    def _select(self, fault_id: str | None) -> list[_Job]:
        everything = {**self._finished, **self._jobs}
        if fault_id is None:
            return list(everything.values())
        return [everything[fault_id]] if fault_id in everything else []

    # -- sending ------------------------------------------------------------------------------------
    def _run(self, job: _Job) -> None:
        rng = random.Random(f"{self._seed}:{job.fault_id}" if self._seed is not None else uuid.uuid4().hex)
        interval = 1.0 / job.rate_per_s
        next_at = time.monotonic()
        sent = 0
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # far behind (a stalled hub): resume the rate, do not burst
            kind = job.kinds[sent % len(job.kinds)]
            body, headers = make_bad_request(kind, rng, self._make_event())
            job.pool.spawn(self._send, job, kind, body, headers)  # waits when max_concurrency are in flight
            sent += 1
            next_at += interval

    def _send(self, job: _Job, kind: str, body: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(job.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        name = f"[chaos] POST {parts.path or '/'} {kind}"
        started = time.perf_counter()
        length = 0
        exception: Exception | None
        try:
            response = job.client.request("POST", target, body=body, headers=headers)
            try:
                length = len(response.read())
            finally:
                response.release()
            status = response.status_code
            job.statuses[status] += 1
            if 400 <= status < 500:
                outcome, exception = "rejected_4xx", None
            elif status >= 500:
                outcome, exception = "server_error", BadPayloadServerError(f"server error {status}")
            else:
                outcome, exception = "accepted", BadPayloadAccepted(f"accepted bad payload ({status})")
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # transport errors are outcomes to report, not crashes of the sender
            outcome, exception = "errors", exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        job.counts[outcome] += 1
        job.by_kind.setdefault(kind, Counter())[outcome] += 1
        try:
            self._fire(request_type="POST", name=name, response_time_ms=elapsed_ms, response_length=length, exception=exception)
        except Exception as exc:  # a broken reporter must not stop the traffic, but it must be seen
            print(f"chaos-events: bad_traffic could not report a request: {exc!r}", file=sys.stderr)
