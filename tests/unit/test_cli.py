"""The `chaos-events` command line, run as a real subprocess: outputs, exit codes, and never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos_events.faults.base import FaultContext, fault_type
from chaos_events.run.journal import Journal
from chaos_events.scenario.model import Target, TargetKind
from chaos_events.record import Record
from tests.helpers import ROOT


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "chaos_events.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def write(tmp_path: Path, text: str, name: str = "s.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_ok(tmp_path):
    proc = cli("validate", "scenarios/gameday.yml", "--no-target-check")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok: gameday (3 targets, 3 faults, 7 SLOs)\n", "")
    path = write(tmp_path, "name: one\ntargets:\n  h: {host: local}\nfaults:\n  - {at: 1s, for: 1s, fault: cpu_burn, target: h, cores: 1}\n")
    assert cli("validate", path).stdout == "ok: one (1 target, 1 fault, 0 SLOs)\n"


def test_validate_prints_every_problem_and_exits_2(tmp_path):
    path = write(tmp_path, "name: t\ncolour: red\nfaults:\n  - {at: -1s, for: 1s, fault: paus, target: x}\n")
    proc = cli("validate", path)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == f"{path}:2: unknown key 'colour'; expected one of: description, faults, halt_when, ledger, name, on_halt, probes, settings, slos, steady_state, targets"
    assert lines[1] == f"{path}:4 faults[0] (paus): unknown fault 'paus'; expected one of: " + ", ".join(
        __import__("chaos_events.faults", fromlist=["x"]).known_fault_types())
    assert lines[2:] == [f"{path}:4 faults[0] (paus): 'at': must not be negative; got '-1s'",
                         f"{path}:4 faults[0] (paus): unknown target 'x'; declared targets: (none)"]


def test_validate_checks_targets_unless_told_not_to(tmp_path):
    env = {"DEMO_RUN_DIR": str(tmp_path / "run")}
    proc = cli("validate", "scenarios/service-broker-pause.yml", env=env)
    assert proc.returncode == 2
    assert proc.stderr == (f"scenarios/service-broker-pause.yml:9 targets.broker (process): pidfile "
                           f"'{tmp_path}/run/broker.pid' does not exist (is the process running?)\n")
    assert cli("validate", "scenarios/service-broker-pause.yml", "--no-target-check", env=env).returncode == 0


def test_validate_missing_file_and_bad_usage(tmp_path):
    proc = cli("validate", str(tmp_path / "nope.yml"))
    assert (proc.returncode, proc.stderr) == (2, f"{tmp_path}/nope.yml: scenario file not found\n")
    proc = cli("validate")
    assert proc.returncode == 2 and "the following arguments are required: FILE" in proc.stderr
    proc = cli("explode")
    assert proc.returncode == 2 and "invalid choice: 'explode'" in proc.stderr
    assert cli().returncode == 2


def test_dry_run_prints_the_expanded_timeline(tmp_path):
    path = write(tmp_path, """name: dry
targets:
  broker: {process: {pid: 4242}}
  link: {proxy: kafka}
faults:
  - {at: 30s, for: 20s, fault: pause, target: broker}
  - {at: 10s, for: 5s, fault: latency, target: link, latency_ms: 100, repeat: {every: 40s, times: 2}}
  - {at: 50s, for: 250ms, fault: kill, target: broker, restart: false}
""")
    proc = cli("dry-run", path, "--no-target-check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "dry run of dry: 3 faults on the timeline; nothing is touched",
        "t=10.0s inject latency link",
        "t=15.0s revert latency link",
        "t=30.0s inject pause broker",
        "t=50.0s revert pause broker",   # a revert comes before an inject at the same time
        "t=50.0s inject latency link",
        "t=50.0s inject kill broker",
        "t=50.25s revert kill broker",
        "t=55.0s revert latency link",
    ]
    bad = cli("dry-run", write(tmp_path, "name: [\n", "bad.yml"))
    assert bad.returncode == 2 and bad.stdout == ""


def test_every_shipped_scenario_validates_offline():
    for path in sorted((ROOT / "scenarios").glob("*.yml")):
        proc = cli("validate", str(path.relative_to(ROOT)), "--no-target-check")
        assert proc.returncode == 0 and proc.stdout.startswith(f"ok: {path.stem} ("), proc.stderr


# -- revert ------------------------------------------------------------------------------------------------------
def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_revert_nothing_to_do(tmp_path):
    proc = cli("revert", "--journal", str(tmp_path / "none.json"))
    assert (proc.returncode, proc.stdout) == (0, f"nothing to revert: no journal at {tmp_path}/none.json\n")
    journal = Journal(tmp_path / "empty.json", run_id="r0")
    journal.close()
    proc = cli("revert", "--journal", str(tmp_path / "empty.json"))
    assert (proc.returncode, proc.stdout) == (0, f"nothing to revert: the journal {tmp_path}/empty.json is empty\n")


def test_revert_resumes_a_paused_process_from_the_journal(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        path = tmp_path / "journal.json"
        journal = Journal(path, run_id="r1")
        target = Target("sleeper", TargetKind.PROCESS, {"pid": sleeper.pid, "restart": None, "cwd": None})
        fault = fault_type("pause")(fault_type("pause").Params(), target)
        journal.add("f0#1", fault)
        fault.inject(FaultContext(run_dir=str(tmp_path), save_state=lambda: journal.add("f0#1", fault), log=lambda m: None))
        deadline = time.monotonic() + 5
        while _state(sleeper.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(sleeper.pid) == "T"
        proc = cli("revert", "--journal", str(path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-2:] == ["reverted f0#1 pause sleeper", "reverted 1 fault"]
        assert _state(sleeper.pid) in ("S", "R")
        assert json.loads(path.read_text())["entries"] == {}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_revert_that_fails_exits_4(tmp_path):
    path = tmp_path / "journal.json"
    journal = Journal(path, run_id="r2")
    target = Target("ghost", TargetKind.PROCESS, {"pid": 4242, "restart": None, "cwd": None})
    journal.add("f0#1", fault_type("pause")(fault_type("pause").Params(), target))
    data = json.loads(path.read_text())
    data["entries"]["f0#1"]["type"] = "no_such_fault"   # a journal from a newer harness, say
    path.write_text(json.dumps(data))
    proc = cli("revert", "--journal", str(path))
    assert proc.returncode == 4
    lines = proc.stdout.splitlines()
    assert lines[-2].startswith("FAILED f0#1 pause ghost: cannot rebuild the fault from the journal: ")
    assert lines[-1] == f"1 of 1 faults could not be reverted; the system may still be degraded (the journal {path} keeps them)"


# -- delegation --------------------------------------------------------------------------------------------------
def test_report_writes_the_four_reports(tmp_path):
    record = tmp_path / "record.json"
    record.write_text(json.dumps(Record(run_id="r3", scenario="service-broker-pause", start_wall=1000.0).to_dict()))
    proc = cli("report", str(record), "--plan", "scenarios/service-broker-pause.yml", "--out", str(tmp_path / "out"))
    assert proc.returncode == 6, proc.stderr   # an empty record: no fault happened, the experiment is incomplete
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["chaos-report.html", "chaos-report.json", "chaos-report.md", "chaos-report.xml"]
    missing = cli("report", str(tmp_path / "nope.json"), "--plan", "scenarios/gameday.yml", "--out", str(tmp_path / "o2"))
    assert missing.returncode == 2 and missing.stderr.startswith(f"chaos-events: {tmp_path}/nope.json: cannot read the run record")


@pytest.mark.parametrize("command, text", [("proxy", "TCP fault proxy"), ("watchdog", "usage:")])
def test_proxy_and_watchdog_are_delegated(command, text):
    proc = cli(command, "--help")
    assert proc.returncode == 0 and text in proc.stdout



def test_the_readme_options_table_is_the_generated_one():
    from pathlib import Path

    from chaos_events.locust_plugin.options import options_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    begin = readme.index("-->\n", readme.index("<!-- options:begin")) + len("-->\n")
    table = readme[begin:readme.index("<!-- options:end -->")]
    assert table == options_markdown().rstrip("\n") + "\n", "README options table is stale: paste `chaos-events options`"
