"""The run's event stream: one JSON object per line, appended as things happen, for programs that follow a run.

Other components (the pytest plugin, a CI job) read this file, never the human log lines: a log format is not a
protocol. Every line has `kind` and `t` (run time) and `wall` (epoch seconds); fault events add `fault_id`, `fault`,
`target`, `detail` (and `data`, the fault's observations, when it has any). Kinds: `run_started`, the fault event
kinds (`injected`, `reverted`, `inject_failed`, `revert_failed`, `planned`, `aborted`), `halted`, `verdict`, and
`proxy_started` (`pid`, `control`, `routes`) / `proxy_stopped` (`pids`) for the harness's own proxy of the routes a
scenario declares.

Pure but for appending to one file (standard library only). Writing is best effort: a full disk must not stop a run.

Example line:
    {"kind": "injected", "t": 20.01, "wall": 1764661234.5, "fault_id": "f0#1", "fault": "pause", "target": "broker"}
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

EVENTS_FILE = "chaos-events.jsonl"


class EventStream:
    """Appends events to `path` (created with its directory; emptied at the start of a run)."""

    def __init__(self, path: str | Path, clock: Callable[[], float], log: Callable[[str], None] = print):
        self.path = Path(path)
        self.clock = clock
        self.log = log
        self._broken = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")
        except OSError as exc:
            self._fail(exc)

    def write(self, kind: str, **data: Any) -> None:
        if self._broken:
            return
        line = json.dumps({"kind": kind, "t": round(self.clock(), 3), "wall": round(time.time(), 3), **data},
                          default=str)
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            self._fail(exc)

    def fault_event(self, event: Any) -> None:
        """A record.FaultEvent, as a line."""
        self.write(event.kind.value, fault_id=event.fault_id, fault=event.fault_type, target=event.target,
                   detail=event.detail, **({"data": event.data} if getattr(event, "data", None) else {}))

    def _fail(self, exc: OSError) -> None:
        self._broken = True
        self.log(f"chaos-events: WARNING: cannot write the event stream {self.path}: {exc.strerror or exc}")


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict], int]:
    """The complete lines from `offset` on, and the offset after them (a reader that follows a growing file)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return events, offset + end


def iter_events(path: str | Path) -> Iterator[dict]:
    yield from read_events(path)[0]
