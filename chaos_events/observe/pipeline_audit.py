"""The pipeline audit: did the acknowledged writes reach the platform's store (API -> Kafka -> consumer -> store)?

`audit_pipeline` asks the platform, as the scenario's `ledger.read_back` says, which ids it holds (batch POSTs, or
one GET per id for a `{id}` URL template), retrying the missing ones while the consumer catches up. A plain blocking
function: under gevent, call it from a native thread (see probes.offload). Standard library only; must not import
locust, gevent, prometheus_client or docker.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from typing import Any, Callable, Iterable, Iterator

from chaos_events.load.payloads import event_id
from chaos_events.observe.ack_ledger import MAX_EXAMPLES, Ledger, unverifiable
from chaos_events.record import LedgerResult


class _LookupError(Exception):
    pass


def _lookup(read_back: Any, ids: list[str], timeout_s: float) -> set[str]:
    """The ids (of `ids`) the platform has: one batch POST, or one GET per id for a `{id}` template."""
    if "{id}" in read_back.url:
        return {ident for ident in ids if _get_found(read_back, ident, timeout_s)}
    url = read_back.url
    body = json.dumps({read_back.ids_field: ids}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _LookupError(f"POST {url} answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise _LookupError(f"POST {url} failed: {exc}") from exc
    found = payload.get(read_back.found_field) if isinstance(payload, dict) else None
    if not isinstance(found, list):
        raise _LookupError(f'POST {url}: expected {{"{read_back.found_field}": [...]}}, got {str(payload)[:200]}')
    return {str(i) for i in found}


def _get_found(read_back: Any, ident: str, timeout_s: float) -> bool:
    url = read_back.url.replace("{id}", urllib.parse.quote(ident, safe=""))
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status in read_back.found_status
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        if exc.code in read_back.found_status:
            return True
        raise _LookupError(f"GET {url} answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise _LookupError(f"GET {url} failed: {exc}") from exc


def _sampled(ledger: Ledger, channel: str | None, fraction: float) -> Iterator[str]:
    # crc32 of the id: the same writes are sampled on every run and every retry, with no state to keep.
    threshold = int(fraction * 1_000_000)
    for producer, seq in ledger.ids(channel):
        ident = event_id(producer, seq)
        if fraction >= 1.0 or zlib.crc32(ident.encode()) % 1_000_000 < threshold:
            yield ident


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def audit_pipeline(
    ledger: Ledger,
    read_back: Any,
    deadline_s: float = 30.0,
    channel: str | None = None,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> LedgerResult:
    """Check that acknowledged writes reached the store, as the scenario's `ledger.read_back` (a ReadBack) says:
    POST batches of ids to its url (or GET its `{id}` template per id), then retry the missing ones until
    `deadline_s` (the consumer may lag). `channel` None checks every channel. `read_back.sample` < 1 checks a
    deterministic sample. Blocking.
    """
    fraction, batch = read_back.sample, read_back.batch
    acknowledged = ledger.count(channel)
    result = LedgerResult(check="pipeline", acknowledged=acknowledged)
    deadline = time.monotonic() + deadline_s
    missing: list[str] = []
    checked = 0
    last_error = ""

    def lookup(ids: list[str]) -> set[str] | None:
        nonlocal last_error
        try:
            return _lookup(read_back, ids, timeout_s=max(0.5, min(timeout_s, deadline - time.monotonic())))
        except _LookupError as exc:
            last_error = str(exc)[:300]
            return None

    # First pass over every sampled id; only the missing ones are kept, so memory follows losses, not writes.
    for chunk in _batches(_sampled(ledger, channel, fraction), batch):
        found = lookup(chunk)
        while found is None:
            if time.monotonic() >= deadline:
                reason = f"could not check every write before the deadline ({deadline_s:g}s): {last_error}"
                return unverifiable(result, reason, checked=checked)
            sleep(0.5)
            found = lookup(chunk)
        checked += len(chunk)
        missing.extend(i for i in chunk if i not in found)
    # Then wait for the consumer to catch up on what was missing.
    while missing and time.monotonic() < deadline:
        sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        still: list[str] = []
        for chunk in _batches(missing, batch):
            found = lookup(chunk)
            still.extend(chunk if found is None else (i for i in chunk if i not in found))
        missing = still
    result.checked = checked
    result.lost = len(missing)
    result.found = checked - len(missing)
    parts = [f"checked {checked} of {acknowledged} acknowledged writes" + (f" (sample {fraction:g})" if fraction < 1 else "")]
    if missing:
        parts.append("lost e.g. " + ", ".join(missing[:MAX_EXAMPLES]))
        if last_error:
            parts.append(f"last error: {last_error}")
    result.detail = "; ".join(parts)
    return result
