"""The revert journal: atomic rewrites, ownership, round trip through Fault.from_journal, LIFO revert."""
from __future__ import annotations

import json
import os

import pytest

from chaos_events.errors import RevertError, SafetyError
from chaos_events.faults.base import FaultParams, Fault, FaultContext, fault_type
from chaos_events.run.journal import Journal, JournalError, read_journal, revert_from_journal
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import registered_faults

REVERTED: list[str] = []


class NoteParams(FaultParams):
    note: str = ""
    fail: bool = False


class NoteFault(Fault):
    """Test-only: its revert appends its note to REVERTED (or fails when `fail`)."""

    type_name = "_test_journal_note"
    Params = NoteParams
    target_kinds = frozenset({TargetKind.HOST})

    def inject(self, ctx: FaultContext) -> None:
        self.state["on"] = True
        ctx.save_state()

    def revert(self, ctx: FaultContext) -> None:
        if self.params.fail:
            raise RevertError(f"{self.params.note} will not revert")
        if self.state.get("on"):
            REVERTED.append(self.params.note)
            self.state["on"] = False


@pytest.fixture(autouse=True, scope="module")
def _note_fault_registered():
    with registered_faults(NoteFault):
        yield


@pytest.fixture(autouse=True)
def clean():
    REVERTED.clear()
    yield
    REVERTED.clear()


HOST = Target("box", TargetKind.HOST, {})


def note(text: str, fail: bool = False, on: bool = True) -> Fault:
    return NoteFault(NoteParams(note=text, fail=fail), HOST, state={"on": on})


def test_new_journal_names_owner_and_run(tmp_path):
    path = tmp_path / "j.json"
    journal = Journal(path, run_id="r-42")
    data = json.loads(path.read_text())
    assert data == {"version": 1, "owner_pid": os.getpid(), "run_id": "r-42", "closed": False, "next_seq": 1, "entries": {}}
    assert journal.owner_pid == os.getpid() and journal.run_id == "r-42" and not journal.closed


def test_add_update_remove_keep_injection_order(tmp_path):
    journal = Journal(tmp_path / "j.json", run_id="r")
    journal.add("f0#1", note("a"), {"run_dir": "/x"})
    journal.add("f1#1", note("b"))
    journal.add("f0#1", note("a2"))           # a state update keeps the entry's place and its context
    entries = journal.entries()
    assert list(entries) == ["f0#1", "f1#1"]
    assert entries["f0#1"]["params"] == {"note": "a2", "fail": False}
    assert entries["f0#1"]["context"] == {"run_dir": "/x"}
    assert entries["f0#1"]["description"] == "_test_journal_note box (note=a2, fail=False)"
    journal.remove("f0#1")
    journal.remove("f0#1")                    # idempotent
    assert list(read_journal(journal.path)["entries"]) == ["f1#1"]


def test_round_trip_through_fault_from_journal(tmp_path):
    journal = Journal(tmp_path / "j.json")
    pause = fault_type("pause")(fault_type("pause").Params(), Target("broker", TargetKind.PROCESS, {"pidfile": "b.pid", "restart": ["x", "y"]}),
                                state={"pid": 123, "start_time": 456})
    kill = fault_type("kill")(fault_type("kill").Params(signal="SIGTERM", restart=False), Target("k", TargetKind.CONTAINER, {"name": "c"}),
                              state={"container_id": "abc"})
    journal.add("f0#1", pause)
    journal.add("f1#1", kill)
    reread = Journal.load(journal.path).entries()   # what another process sees
    for oid, original in (("f0#1", pause), ("f1#1", kill)):
        rebuilt = Fault.from_journal(reread[oid])
        assert type(rebuilt) is type(original)
        assert rebuilt.params == original.params
        assert (rebuilt.target.name, rebuilt.target.kind) == (original.target.name, original.target.kind)
        assert rebuilt.target.spec == original.target.spec
        assert rebuilt.state == original.state


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "j.json", durable=True)  # fsync is where a full disk shows
    journal.add("f0#1", note("a"))
    before = journal.path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(JournalError) as err:
        journal.add("f1#1", note("b"))
    assert str(err.value) == f"{journal.path}: cannot write the revert journal: No space left on device"
    monkeypatch.undo()
    assert journal.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["j.json"]   # no temp file left behind


def test_opening_refuses_a_journal_with_leftovers(tmp_path):
    path = tmp_path / "j.json"
    first = Journal(path, run_id="old", owner_pid=999999999)
    first.add("f0#1", note("a"))
    with pytest.raises(SafetyError) as err:
        Journal(path, run_id="new")
    assert str(err.value) == (
        f"{path}: the revert journal still lists faults not reverted by run old (pid 999999999): "
        f"_test_journal_note box (note=a, fail=False); run `chaos-events revert --journal {path}` first")
    first.remove("f0#1")
    Journal(path, run_id="new")               # empty now: fine to reuse


def test_damaged_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.json"
    path.write_text("{not json")
    with pytest.raises(JournalError) as err:
        read_journal(path)
    assert str(err.value) == f"{path}: the revert journal is not valid JSON (Expecting property name enclosed in double quotes at line 1)"
    path.write_text("[1, 2]")
    with pytest.raises(JournalError) as err:
        read_journal(path)
    assert str(err.value) == f"{path}: not a chaos-events revert journal (version 1); got list"
    assert read_journal(tmp_path / "missing.json") is None


def test_revert_from_journal_is_lifo_and_keeps_failures(tmp_path):
    path = tmp_path / "j.json"
    journal = Journal(path, owner_pid=999999999)
    journal.add("f0#1", note("first"))
    journal.add("f1#1", note("broken", fail=True))
    journal.add("f2#1", note("last"))
    lines: list[str] = []
    results = revert_from_journal(path, log=lines.append)
    assert REVERTED == ["last", "first"]
    assert [(r.occurrence_id, r.ok, r.error) for r in results] == [("f2#1", True, ""), ("f1#1", False, "broken will not revert"), ("f0#1", True, "")]
    assert list(read_journal(path)["entries"]) == ["f1#1"]
    assert "REVERT FAILED f1#1 _test_journal_note box (note=broken, fail=True): broken will not revert" in lines
    assert revert_from_journal(tmp_path / "nothing.json") == []


def test_revert_from_journal_keeps_an_entry_it_cannot_rebuild(tmp_path):
    path = tmp_path / "j.json"
    Journal(path).add("f0#1", note("a"))
    data = json.loads(path.read_text())
    data["entries"]["f0#1"]["type"] = "no_such_fault"
    path.write_text(json.dumps(data))
    [result] = revert_from_journal(path, log=lambda line: None)
    assert not result.ok and result.error.startswith("cannot rebuild the fault from the journal: \"unknown fault 'no_such_fault'")
    assert list(read_journal(path)["entries"]) == ["f0#1"]


def test_close_marks_the_run_ended(tmp_path):
    journal = Journal(tmp_path / "j.json")
    journal.close()
    assert read_journal(journal.path)["closed"] is True and journal.closed
