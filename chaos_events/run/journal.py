"""The revert journal: a small JSON file listing every fault injected and not yet reverted, with its state.

It exists for the one case the engine cannot handle in-process: the harness is SIGKILLed (or the machine's OOM
killer strikes) while faults are active. A fresh process (the watchdog, or `chaos-events revert --journal FILE`)
rebuilds each fault with `Fault.from_journal` and reverts it, last in first out.

Must not import locust, gevent, docker or prometheus_client (faults reach those lazily through their backends).

Durability: the file is rewritten atomically (temp file, rename) on every change, which is all a SIGKILL needs: the
kernel keeps what was written. It is not fsynced by default, because an fsync blocks the gevent hub (and so the load)
for milliseconds at every inject; `Journal(..., durable=True)` adds the fsyncs for a journal that must survive a power loss.

File format (version 1):
    {"version": 1, "owner_pid": 4242, "run_id": "r-...", "closed": false, "next_seq": 3,
     "entries": {"f0#1": {"seq": 1, "description": "pause broker", "context": {"run_dir": ".run", ...},
                          "type": "pause", "params": {...}, "target": {...}, "state": {...}}}}
`parts` (optional) lists what the run started besides faults, by key: the harness's own proxy for the routes a
scenario declares ({"proxy:free": {"kind": "proxy", "pid": 4243, "start_time": ..., ...}}); a revert stops them
after the faults (run/proxy_part.py).
`closed` is set by `Journal.close()` when the owner ended its run cleanly (every revert attempted); the watchdog
then exits without touching anything. Entries left in a closed journal are reverts that failed (exit code 4):
`chaos-events revert --journal FILE` retries them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chaos_events.atomic import atomic_write_text
from chaos_events.errors import ChaosError, SafetyError

VERSION = 1


class JournalError(ChaosError):
    """The journal file cannot be read or written."""


@dataclass(frozen=True)
class RevertResult:
    """Outcome of reverting one journal entry. `error` is empty when `ok`."""

    occurrence_id: str
    description: str
    ok: bool
    error: str = ""
    part: bool = False   # a part the run started (its proxy), stopped rather than reverted


def read_journal(path: str | os.PathLike) -> dict[str, Any] | None:
    """The journal's content, or None when there is no file. A damaged file raises JournalError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the revert journal: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JournalError(f"{path}: the revert journal is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("entries"), dict):
        raise JournalError(f"{path}: not a chaos-events revert journal (version {VERSION}); got {type(data).__name__}")
    return data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_no_leftovers(path: str | os.PathLike) -> None:
    """Raise SafetyError when the journal still lists faults of an earlier run: they must be reverted first."""
    existing = read_journal(path)
    if existing and (existing["entries"] or existing.get("parts")):
        names = ", ".join([e.get("description") or oid for oid, e in existing["entries"].items()]
                          + [p.get("description") or key for key, p in (existing.get("parts") or {}).items()])
        owner = existing.get("owner_pid")
        alive = " (still running)" if isinstance(owner, int) and _pid_alive(owner) else ""
        raise SafetyError(
            f"{path}: the revert journal still lists faults not reverted by run {existing.get('run_id') or '?'} "
            f"(pid {owner}{alive}): {names}; run `chaos-events revert --journal {path}` first")


class Journal:
    """The journal of one run, owned by this process. Invariant: the file lists exactly the faults whose inject
    was started and whose revert has not succeeded, in injection order (`seq`).

    Example:
        journal = Journal(".run/chaos-journal.json", run_id="r1")
        journal.add("f0#1", fault)      # before inject; again from ctx.save_state() as the state fills
        journal.remove("f0#1")          # after a verified revert
        journal.close()                 # run ended: the watchdog may exit

    Opening refuses (SafetyError) a file that still lists faults of another run, so leftovers are never
    overwritten and forgotten: revert them first with `chaos-events revert --journal FILE`.
    """

    def __init__(self, path: str | os.PathLike, run_id: str = "", *, owner_pid: int | None = None,
                 durable: bool = False):
        self.path = Path(path)
        self.durable = durable
        check_no_leftovers(self.path)
        self._data: dict[str, Any] = {
            "version": VERSION,
            "owner_pid": os.getpid() if owner_pid is None else owner_pid,
            "run_id": run_id,
            "closed": False,
            "next_seq": 1,
            "entries": {},
        }
        self._write()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Journal":
        """Open an existing journal to revert its entries (another process's, typically); no ownership check."""
        data = read_journal(path)
        if data is None:
            raise JournalError(f"{path}: no revert journal at this path")
        journal = cls.__new__(cls)
        journal.path = Path(path)
        journal.durable = False
        journal._data = data
        return journal

    # -- what the engine calls ---------------------------------------------------------------------
    def add(self, occurrence_id: str, fault: Any, context: dict[str, Any] | None = None) -> None:
        """Record (or update) a fault's entry; keeps its place in injection order."""
        entries = self._data["entries"]
        previous = entries.get(occurrence_id)
        if previous is None:
            seq = self._data["next_seq"]
            self._data["next_seq"] = seq + 1
        else:
            seq = previous["seq"]
            context = context if context is not None else previous.get("context")
        entries[occurrence_id] = {"seq": seq, "description": fault.describe(), "context": context or {}, **fault.journal_entry()}
        self._write()

    def remove(self, occurrence_id: str) -> None:
        if self._data["entries"].pop(occurrence_id, None) is not None:
            self._write()

    def add_part(self, key: str, info: dict[str, Any]) -> None:
        """Record (or update) a part the run started, such as the harness's proxy: a revert stops it."""
        self._data.setdefault("parts", {})[key] = info
        self._write()

    def remove_part(self, key: str) -> None:
        if self._data.get("parts", {}).pop(key, None) is not None:
            self._write()

    def parts(self) -> dict[str, dict[str, Any]]:
        """key -> what the journal knows of a started part (a copy), in start order."""
        return dict(self._data.get("parts") or {})

    def entries(self) -> dict[str, dict[str, Any]]:
        """occurrence_id -> entry, in injection order (a copy)."""
        return dict(sorted(self._data["entries"].items(), key=lambda item: item[1]["seq"]))

    def close(self) -> None:
        """Mark the run as ended cleanly; a watchdog polling this file exits. Failed reverts stay listed."""
        self._data["closed"] = True
        self._write()

    @property
    def closed(self) -> bool:
        return bool(self._data.get("closed"))

    @property
    def owner_pid(self) -> int | None:
        return self._data.get("owner_pid")

    @property
    def run_id(self) -> str:
        return self._data.get("run_id", "")

    def _write(self) -> None:
        try:
            atomic_write_text(self.path, json.dumps(self._data, indent=1), durable=self.durable)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the revert journal: {exc.strerror or exc}") from exc


def revert_from_journal(path: str | os.PathLike, log: Callable[[str], None] = print) -> list[RevertResult]:
    """Revert every fault the journal lists, last injected first; reverted entries leave the file, failures stay.

    Works in a fresh process after a SIGKILL of the owner. Never raises for a fault that fails to revert (its
    result says why); a missing journal means nothing to do.
    """
    if read_journal(path) is None:
        return []
    journal = Journal.load(path)
    results = _revert_entries(journal, path, log)
    return results + _stop_parts(journal, log)


def _stop_parts(journal: Journal, log: Callable[[str], None]) -> list[RevertResult]:
    """Stop what the run started (its proxy), last first, after its faults: their reverts needed it running."""
    from chaos_events.run.proxy_part import stop_journalled

    results = []
    for key, info in reversed(list(journal.parts().items())):
        description = info.get("description") or key
        try:
            error = stop_journalled(info, log)
        except OSError as exc:
            error = f"cannot stop it: {exc.strerror or exc}"
        if error:
            log(f"STOP FAILED {key} {description}: {error}")
        else:
            journal.remove_part(key)
        results.append(RevertResult(key, description, not error, error, part=True))
    return results


def _revert_entries(journal: Journal, path: str | os.PathLike, log: Callable[[str], None]) -> list[RevertResult]:
    from chaos_events.faults.base import Fault, FaultContext  # the registry imports every fault family; only needed here

    results: list[RevertResult] = []
    for occurrence_id, entry in reversed(list(journal.entries().items())):
        description = entry.get("description") or occurrence_id
        try:
            fault = Fault.from_journal(entry)
        except Exception as exc:  # an unknown type or bad params: keep the entry for a human
            error = f"cannot rebuild the fault from the journal: {exc}"
            log(f"REVERT FAILED {occurrence_id} {description}: {error}")
            results.append(RevertResult(occurrence_id, description, False, error))
            continue
        context = entry.get("context") or {}
        ctx = FaultContext(
            run_dir=context.get("run_dir", ".run"),
            kafka_bootstrap=context.get("kafka_bootstrap"),
            log=log,
            save_state=lambda oid=occurrence_id, f=fault: journal.add(oid, f),
            occurrence_id=context.get("occurrence_id") or occurrence_id,
        )
        try:
            fault.revert(ctx)
            fault.verify_reverted(ctx)
        except Exception as exc:
            journal.add(occurrence_id, fault)  # keep whatever state the attempt learned
            log(f"REVERT FAILED {occurrence_id} {description}: {exc}")
            results.append(RevertResult(occurrence_id, description, False, str(exc)))
            continue
        journal.remove(occurrence_id)
        log(f"reverted {occurrence_id} {description} (from journal {path})")
        results.append(RevertResult(occurrence_id, description, True))
    return results
