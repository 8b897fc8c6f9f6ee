"""Caps and parameter checks of the resource and data faults, with their exact messages; revert before inject is a
no-op; the bad_payloads broadcasts; journal round trips. No process is started here (see tests/integration)."""
from __future__ import annotations

import os
import re

import pytest

from chaos_events.backends import resource as backend
from chaos_events.load.corrupt import API_KINDS, POISON_KINDS
from chaos_events.errors import InjectionError
from chaos_events.faults.base import Fault, FaultContext, build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind

HOST = Target("host", TargetKind.HOST, {})
GiB = 1024**3


def _params(name: str, **raw):
    params, problems = build_params(fault_type(name), raw)
    assert problems == [], problems
    return params


def _problems(name: str, **raw) -> list[str]:
    params, problems = build_params(fault_type(name), raw)
    assert params is None
    return problems


# -- caps as pure functions, exact messages ----------------------------------------------------------------
def test_cpu_cap_is_the_core_count():
    assert backend.cpu_burn_problems(2, available=2) == []
    assert backend.cpu_burn_problems(3, available=2) == ["cores 3 exceeds the 2 CPU cores of this machine; expected 1..2"]


def test_memory_cap_is_half_of_mem_available():
    assert backend.memory_problems(500, available=1000) == []
    assert backend.memory_problems(501, available=1000) == [
        "size_bytes 501 exceeds the cap of 500 bytes (50% of MemAvailable 1000 bytes)"]


def test_disk_floor_is_five_percent_or_one_gib_whichever_is_larger():
    small = backend.DiskSpace(total_bytes=10 * GiB, free_bytes=4 * GiB)
    big = backend.DiskSpace(total_bytes=100 * GiB, free_bytes=40 * GiB)
    assert small.floor_bytes == GiB
    assert big.floor_bytes == 5 * GiB
    assert backend.disk_fill_problems("/d", 3 * GiB, None, space=small) == []
    assert backend.disk_fill_problems("/d", 3 * GiB + 1, None, space=small) == [
        f"filling {3 * GiB + 1} bytes would leave {GiB - 1} bytes free in /d; the cap keeps at least {GiB} bytes free "
        f"(5% of {10 * GiB} bytes or 1 GiB, whichever is larger)"]
    # free_percent: fill until 10% of 100 GiB is free -> 30 GiB written, 10 GiB left: fine; 4% would cross 5%.
    assert backend.disk_fill_bytes(big, None, 10) == 30 * GiB
    assert backend.disk_fill_problems("/d", None, 10, space=big) == []
    assert backend.disk_fill_problems("/d", None, 4, space=big) == [
        f"filling {36 * GiB} bytes would leave {4 * GiB} bytes free in /d; the cap keeps at least {5 * GiB} bytes free "
        f"(5% of {100 * GiB} bytes or 1 GiB, whichever is larger)"]


def test_connection_caps():
    assert backend.connection_problems(5000, limit=1 << 20) == []
    assert backend.connection_problems(5001, limit=1 << 20) == ["connections 5001 exceeds the cap of 5000"]
    assert backend.connection_problems(1000, limit=1024) == [
        "connections 1000 must be below the open-file limit 1024 minus 64 for the child's own files"]


# -- check() on this machine ---------------------------------------------------------------------------------
def test_cpu_burn_check_refuses_more_cores_than_this_machine_has():
    cores = os.cpu_count()
    cls = fault_type("cpu_burn")
    assert cls.preflight(_params("cpu_burn", cores=cores), HOST) == []
    assert cls.preflight(_params("cpu_burn", cores=cores + 1), HOST) == [
        f"cores {cores + 1} exceeds the {cores} CPU cores of this machine; expected 1..{cores}"]


def test_memory_pressure_check_names_the_cap_and_the_value():
    [message] = fault_type("memory_pressure").preflight(_params("memory_pressure", size_bytes="1000000GB"), HOST)
    match = re.fullmatch(r"size_bytes 1000000000000000 exceeds the cap of (\d+) bytes \(50% of MemAvailable (\d+) bytes\)", message)
    assert match and int(match.group(1)) == int(match.group(2)) // 2


def test_disk_fill_check_on_a_real_directory(tmp_path):
    target = Target("scratch", TargetKind.DIRECTORY, {"path": str(tmp_path)})
    cls = fault_type("disk_fill")
    assert cls.preflight(_params("disk_fill", size_bytes="1MiB"), target) == []
    [message] = cls.preflight(_params("disk_fill", free_percent=0), target)
    assert message.startswith("filling ") and f"bytes free in {tmp_path}; the cap keeps at least" in message
    missing = Target("scratch", TargetKind.DIRECTORY, {"path": str(tmp_path / "nope")})
    assert cls.preflight(_params("disk_fill", size_bytes=1), missing) == [f"directory {str(tmp_path / 'nope')!r} does not exist"]


def test_pool_exhaustion_check():
    target = Target("api", TargetKind.ENDPOINT, {"url": "http://127.0.0.1:1/"})
    cls = fault_type("pool_exhaustion")
    assert cls.preflight(_params("pool_exhaustion", connections=10), target) == []
    assert cls.preflight(_params("pool_exhaustion", connections=5001), target) == ["connections 5001 exceeds the cap of 5000"]


def test_inject_refuses_over_the_cap_and_starts_nothing():
    cores = os.cpu_count()
    fault = fault_type("cpu_burn")(_params("cpu_burn", cores=cores + 1), HOST)
    with pytest.raises(InjectionError) as err:
        fault.inject(FaultContext())
    assert str(err.value) == f"cpu_burn: cores {cores + 1} exceeds the {cores} CPU cores of this machine; expected 1..{cores}"
    assert fault.state.get("children", []) == []
    fault.revert(FaultContext())


# -- parameters ----------------------------------------------------------------------------------------------
def test_parameter_problems_have_exact_messages():
    assert _problems("cpu_burn", cores=0) == ["parameter 'cores': must be at least 1; got 0"]
    assert _problems("cpu_burn", cores=1, load=1.5) == ["parameter 'load': must be above 0 and at most 1; got 1.5"]
    assert _problems("cpu_burn", cores=1, lod=1) == ["unknown parameter 'lod'; expected one of: cores, load"]
    assert _problems("memory_pressure") == ["missing parameter 'size_bytes'"]
    assert _problems("memory_pressure", size_bytes="lots") == [
        "parameter 'size_bytes': expected a size like 512MB, 1GiB or a number of bytes; got 'lots'"]
    assert _problems("disk_fill", size_bytes="1MB", free_percent=10) == ["expected exactly one of 'size_bytes' or 'free_percent'"]
    assert _problems("disk_fill") == ["expected exactly one of 'size_bytes' or 'free_percent'"]
    assert _problems("disk_fill", free_percent=100) == ["parameter 'free_percent': must be at least 0 and below 100; got 100"]
    assert _problems("pool_exhaustion", connections=5, hold="busy") == [
        "parameter 'hold': unknown value 'busy'; expected one of: idle, slow-request"]
    assert _problems("bad_payloads", rate_per_s=5, kinds=["invalid-json", "nonsense"]) == [
        "parameter 'kinds': unknown kind 'nonsense'; expected one of: " + ", ".join(sorted(API_KINDS))]
    assert _problems("bad_payloads", rate_per_s=0) == ["parameter 'rate_per_s': must be above 0 and at most 1000; got 0"]
    assert _problems("poison_messages", rate_per_s=1, kinds=["oversized"]) == [
        "parameter 'kinds': unknown kind 'oversized'; expected one of: " + ", ".join(sorted(POISON_KINDS))]


def test_defaults():
    assert _params("cpu_burn", cores=1).load == 1.0
    assert _params("disk_fill", size_bytes="64MiB").chunk_bytes == 4 * 1024 * 1024
    assert _params("pool_exhaustion", connections=3).hold == "idle"
    bad = _params("bad_payloads", rate_per_s=2)
    assert bad.kinds == API_KINDS and bad.path == "/api/events"
    assert _params("poison_messages", rate_per_s=2).kinds == POISON_KINDS


# -- revert contract without processes -----------------------------------------------------------------------
def _examples(tmp_path) -> list[Fault]:
    return [
        fault_type("cpu_burn")(_params("cpu_burn", cores=1), HOST),
        fault_type("memory_pressure")(_params("memory_pressure", size_bytes="1MiB"), HOST),
        fault_type("disk_fill")(_params("disk_fill", size_bytes="1MiB"), Target("d", TargetKind.DIRECTORY, {"path": str(tmp_path)})),
        fault_type("pool_exhaustion")(_params("pool_exhaustion", connections=2), Target("e", TargetKind.ENDPOINT, {"url": "http://127.0.0.1:1"})),
        fault_type("bad_payloads")(_params("bad_payloads", rate_per_s=1), Target("e", TargetKind.ENDPOINT, {"url": "http://127.0.0.1:1"})),
        fault_type("poison_messages")(_params("poison_messages", rate_per_s=1), Target("k", TargetKind.KAFKA, {"bootstrap": "127.0.0.1:1", "topic": "t"})),
    ]


def test_revert_before_inject_is_a_no_op(tmp_path):
    sent = []
    ctx = FaultContext(broadcast=lambda kind, data: sent.append(kind))
    for fault in _examples(tmp_path):
        fault.revert(ctx)
        fault.revert(ctx)
        fault.verify_reverted(ctx)
    assert sent == []
    assert os.listdir(tmp_path) == []


def test_journal_round_trip(tmp_path):
    for fault in _examples(tmp_path):
        rebuilt = Fault.from_journal(fault.journal_entry())
        assert type(rebuilt) is type(fault) and rebuilt.params == fault.params and rebuilt.target.spec == fault.target.spec


def test_remove_fill_refuses_a_file_that_is_not_ours(tmp_path):
    precious = tmp_path / "data.db"
    precious.write_text("keep me")
    with pytest.raises(Exception) as err:
        backend.remove_fill(str(precious))
    assert str(err.value) == f"refusing to delete {precious}: not a disk_fill file (.chaos-disk-fill-*)"
    assert precious.read_text() == "keep me"


# -- bad_payloads broadcasts ---------------------------------------------------------------------------------
def test_bad_payloads_broadcasts_start_once_and_stop_once():
    sent: list[tuple[str, dict]] = []
    saved = []
    fault = fault_type("bad_payloads")(_params("bad_payloads", rate_per_s=4, kinds=["invalid-json", "bom"]),
                                       Target("api", TargetKind.ENDPOINT, {"url": "http://127.0.0.1:8000/"}))
    ctx = FaultContext(broadcast=lambda kind, data: sent.append((kind, data)), occurrence_id="occ-7",
                       save_state=lambda: saved.append(dict(fault.state)))
    fault.inject(ctx)
    assert saved[0] == {"id": "occ-7", "started": True}  # saved before the broadcast went out
    assert sent == [("chaos_bad_traffic", {"fault_id": "occ-7", "url": "http://127.0.0.1:8000/api/events",
                                           "rate_per_s": 4.0, "kinds": ["invalid-json", "bom"]})]
    fault.revert(ctx)
    fault.revert(ctx)
    assert sent[1:] == [("chaos_bad_traffic_stop", {"fault_id": "occ-7"})]


def test_bad_payloads_without_an_occurrence_id_makes_a_stable_one():
    sent = []
    fault = fault_type("bad_payloads")(_params("bad_payloads", rate_per_s=1, path="/v2/ingest"),
                                       Target("api", TargetKind.ENDPOINT, {"host": "127.0.0.1", "port": 9, "url": None}))
    ctx = FaultContext(broadcast=lambda kind, data: sent.append(data))
    fault.inject(ctx)
    rebuilt = Fault.from_journal(fault.journal_entry())  # as a journal revert in another process would
    rebuilt.revert(ctx)
    assert sent[0]["url"] == "http://127.0.0.1:9/v2/ingest"
    assert sent[1] == {"fault_id": sent[0]["fault_id"]} and sent[0]["fault_id"].startswith("bad_payloads-")
