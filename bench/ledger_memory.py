"""Benchmark 7: memory of the write ledger per million acknowledged writes (tracemalloc), in process.

Traffic shape: 20 producers; acks mostly in order, about 1 in 1,000 writes never acknowledged (a gap), and about
1 in 100 acknowledged out of order (swapped with its neighbour), as delivery reports from several partitions arrive.
The ledger keeps both the full ranges and the unsent delta (the default), so both are in the figure.
"""
from __future__ import annotations

import gc
import random
import time
import tracemalloc

from .common import make_result

NAME = "ledger_memory"
TITLE = "Ledger memory per 1M acknowledged writes"
GOAL = 1_000_000.0
GOAL_OP = "<="
PRODUCERS = 20
GAP_EVERY = 1000      # ~1 in 1,000 writes missing
SWAP_EVERY = 100      # ~1 in 100 acknowledged out of order


def ack_stream(total: int, seed: int = 7) -> list[tuple[str, int]]:
    """(producer, seq) in acknowledgement order: interleaved producers, gaps and neighbour swaps."""
    rng = random.Random(seed)
    per_producer = total // PRODUCERS
    streams = []
    for p in range(PRODUCERS):
        seqs: list[int] = []
        seq = 0
        while len(seqs) < per_producer:
            seq += 1
            if rng.randrange(GAP_EVERY) != 0:
                seqs.append(seq)
        for i in range(0, len(seqs) - 1):
            if rng.randrange(SWAP_EVERY) == 0:
                seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]
        streams.append((f"w1-u{p}-{p:08x}", seqs))
    out: list[tuple[str, int]] = []
    for i in range(per_producer):
        for producer, seqs in streams:
            out.append((producer, seqs[i]))
    return out


def run(quick: bool = False) -> dict:
    from chaos_events.observe.ledger import Ledger  # pure module: no Locust, no gevent needed

    total = 200_000 if quick else 1_000_000
    stream = ack_stream(total)
    # Warm up: the first Ledger imports gevent.monkey for its native lock; that is code, not ledger data.
    Ledger().ack("api", "warm-up", 1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ledger = Ledger()
        t0 = time.perf_counter()
        for producer, seq in stream:
            ledger.ack("api", producer, seq)
        elapsed = time.perf_counter() - t0
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # Timing without tracemalloc's per-allocation hook, for the per-ack cost.
    ledger2 = Ledger()
    t0 = time.perf_counter()
    for producer, seq in stream:
        ledger2.ack("api", producer, seq)
    untraced = time.perf_counter() - t0
    used = after - before
    count = ledger.count("api")
    per_million = used * 1_000_000 / count
    ranges = sum(len(ledger.ranges("api", p)) for p in ledger.producers("api"))
    delta = ledger.take_wire_delta()
    return make_result(
        NAME, TITLE, round(per_million), "bytes", GOAL, GOAL_OP,
        limited_by="number of ranges (one per gap or reordering), 16 bytes each, kept twice (full ledger + unsent delta)",
        details={"acknowledged": count, "ranges": ranges, "bytes_traced": used, "producers": PRODUCERS,
                 "gap_every": GAP_EVERY, "swap_every": SWAP_EVERY, "ack_ns_each": round(untraced / len(stream) * 1e9),
                 "ack_ns_each_traced": round(elapsed / len(stream) * 1e9), "wire_delta_items": len(delta)},
    )
