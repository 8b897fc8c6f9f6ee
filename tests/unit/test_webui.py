"""The Chaos tab, the /chaos page and its routes, and the start-form scenario check, through Flask's test client on
a real Locust Environment + WebUI, with a real ChaosSession pausing a real process (`sleep`) and reverting it.

No browser here (tests/integration/test_webui.py drives headless Chromium); no server socket either (delayed_start).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from locust import User, constant, task
from locust.env import Environment
from locust.web import WebUI

from chaos_events.errors import ChaosError
from chaos_events.scenario.loader import load_plan, parse_plan
from chaos_events.record import FaultEvent, FaultEventKind
from chaos_events.run.session import ChaosSession, LoadHooks, SessionOptions
from chaos_events.locust_plugin.webui import TAB_COLUMNS, TAB_KEY, OccurrenceState, chaos_view, install_chaos_tab, tab_rows, timeline_view

SCENARIO = """\
name: webui-pause
targets:
  sleeper: {{process: {{pidfile: "{pidfile}"}}}}
faults:
  - {{at: 0s, for: 60s, fault: pause, target: sleeper}}
  - {{at: 100s, for: 5s, fault: pause, target: sleeper}}
slos:
  - {{name: errors-during-pause, metric: error_rate, during: fault, max: 10%}}
  - {{name: recovery, metric: recovery_time, max: 30s}}
"""


class IdleUser(User):
    wait_time = constant(1)

    @task
    def nothing(self):
        pass


def proc_state(pid: int) -> str:
    """The one-letter state from /proc/PID/stat ('T' when stopped by SIGSTOP)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


@pytest.fixture
def sleeper(tmp_path):
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    pidfile = tmp_path / "sleeper.pid"
    pidfile.write_text(str(proc.pid))
    try:
        yield proc
    finally:
        try:
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture
def scenario(tmp_path, sleeper):
    path = tmp_path / "webui-pause.yml"
    path.write_text(SCENARIO.format(pidfile=tmp_path / "sleeper.pid"))
    return path


class Harness:
    """A Locust Environment + WebUI (no socket) with the Chaos tab installed over a real ChaosSession."""

    def __init__(self, tmp_path: Path, scenario: Path, web_login: bool = False):
        self.env = Environment(user_classes=[IdleUser], host="http://127.0.0.1:1")
        self.env.parsed_options = argparse.Namespace(
            chaos_plan=str(scenario), chaos_allow="", chaos_report_dir=str(tmp_path / "reports"), chaos_dry_run=False,
            num_users=1, spawn_rate=1, run_time=None, stats_history_enabled=False, web_base_path=None, host="")
        self.runner = self.env.create_local_runner()
        self.web_ui = WebUI(self.env, "127.0.0.1", 0, delayed_start=True, web_login=web_login)
        self.web_ui.app.config["SECRET_KEY"] = "test-only"
        options = SessionOptions(report_dir=str(tmp_path / "reports"), journal_path=str(tmp_path / "journal.json"),
                                 headless=False, watchdog=False)
        # Greenlets are not started: the test drives the engine with tick() itself, so nothing races the asserts.
        hooks = LoadHooks(spawn=lambda fn, *args: None, sleep=lambda s: None, broadcast=lambda kind, data: None,
                          log=lambda line: None)
        self.session = ChaosSession(load_plan(str(scenario)), options, hooks)
        self.aborts = 0
        install_chaos_tab(self.web_ui, self.env, lambda: self.session, self.reload_plan, self.abort)
        self.client = self.web_ui.app.test_client()

    def reload_plan(self) -> str | None:
        """What plugin._reload_plan_from_options does: load and validate the scenario the options name."""
        try:
            self.session.plan = load_plan(self.env.parsed_options.chaos_plan) if self.env.parsed_options.chaos_plan else None
        except ChaosError as exc:
            return str(exc)
        return None

    def abort(self) -> None:
        self.aborts += 1
        self.session.abort_chaos()

    def state(self) -> dict:
        resp = self.client.get("/chaos/state")
        assert resp.status_code == 200
        return resp.get_json()

    def tab_rows(self) -> list[dict]:
        data = self.client.get("/stats/requests").get_json()
        tabs = [e for e in data["extended_stats"] if e["key"] == TAB_KEY]
        assert len(tabs) == 1
        return tabs[0]["data"]

    def close(self) -> None:
        if self.session.running:
            self.session.stop("test over")
        if self.web_ui._swarm_greenlet is not None:
            self.web_ui._swarm_greenlet.kill(block=True)
        self.runner.quit()


@pytest.fixture
def ui(tmp_path, scenario, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["locust"])  # Locust reads the UI's extra options from the command line
    harness = Harness(tmp_path, scenario)
    try:
        yield harness
    finally:
        harness.close()


def test_tab_is_registered_with_the_shapes_the_react_ui_reads(ui):
    args = ui.web_ui.template_args
    assert {"title": "Chaos", "key": TAB_KEY} in args["extended_tabs"]
    table = next(t for t in args["extended_tables"] if t["key"] == TAB_KEY)
    assert [c["key"] for c in table["structure"]] == [k for k, _ in TAB_COLUMNS]
    assert {"href": "/chaos/", "title": "Chaos: live game-day view, Abort chaos, reports"} in args["extended_csv_files"]
    data = ui.client.get("/stats/requests").get_json()
    assert data["state"] == "ready" and data["stats"]  # Locust's own payload is intact
    rows = ui.tab_rows()
    assert rows[0]["kind"] == "Run" and rows[0]["item"] == "webui-pause" and rows[0]["state"] == "idle"
    assert all(set(r) == {k for k, _ in TAB_COLUMNS} for r in rows)
    timeline = [r for r in rows if r["kind"] == "Timeline"]
    assert [(r["item"], r["state"]) for r in timeline] == [("f0#1 pause sleeper", "planned"), ("f1#1 pause sleeper", "planned")]
    assert [r["item"] for r in rows if r["kind"] == "SLO"] == ["errors-during-pause (error_rate)", "recovery (recovery_time)"]


def test_live_view_shows_the_active_fault_and_abort_reverts_it(ui, sleeper):
    ui.session.start()
    ui.session.engine.tick()  # t≈0: the first pause is due
    assert proc_state(sleeper.pid) == "T"
    view = ui.state()
    assert view["running"] and view["can_abort"]
    assert [(a["occurrence_id"], a["fault"], a["target"]) for a in view["active"]] == [("f0#1", "pause", "sleeper")]
    assert [(o["occurrence_id"], o["state"]) for o in view["timeline"]] == [("f0#1", "active"), ("f1#1", "planned")]
    assert view["active"][0]["ends_t"] == 60.0  # the scheduled revert time
    ui.session.update_live_state()
    view = ui.state()
    assert view["phase"] == "fault"
    assert {s["name"]: s["status"] for s in view["slos"]} == {"errors-during-pause": "N/A", "recovery": "N/A"}
    rows = ui.tab_rows()
    assert [r["item"] for r in rows if r["kind"] == "Active now"] == ["pause sleeper"]
    assert ("f0#1 pause sleeper", "active") in [(r["item"], r["state"]) for r in rows if r["kind"] == "Timeline"]
    assert [(r["kind"], r["state"], r["detail"]) for r in rows if r["kind"] in ("Detection", "Recovery")] == [
        ("Detection", "not measured", "the scenario has no detection_time SLO"), ("Recovery", "not yet", "")]

    resp = ui.client.post("/chaos/abort")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["ok"] is True and body["active"] == [] and not body["can_abort"]
    assert [(o["occurrence_id"], o["state"]) for o in body["timeline"]] == [("f0#1", "reverted"), ("f1#1", "cancelled")]
    assert proc_state(sleeper.pid) != "T"
    assert ui.session.running  # the load keeps running: only the chaos stopped

    again = ui.client.post("/chaos/abort")
    assert again.status_code == 409
    assert again.get_json()["message"] == "Nothing to abort: no fault is active or planned in a running chaos run."
    assert ui.aborts == 1


def test_reports_are_listed_and_served_only_from_the_run(ui, tmp_path):
    ui.session.start()
    ui.session.engine.tick()
    ui.session.stop("run over")
    ui.session.finish()
    view = ui.state()
    assert view["final"] and not view["running"]
    names = {r["name"] for r in view["reports"]}
    assert names == {"chaos-report.json", "chaos-report.xml", "chaos-report.md", "chaos-report.html"}
    resp = ui.client.get("/chaos/reports/chaos-report.json")
    assert resp.status_code == 200 and resp.get_json()["scenario"] == "webui-pause"
    (tmp_path / "secret.txt").write_text("not a report")
    for bad in ("secret.txt", "..%2Fsecret.txt", "journal.json"):
        resp = ui.client.get(f"/chaos/reports/{bad}")
        assert resp.status_code == 404, bad
    assert ui.client.get("/chaos/reports/nope.txt").get_json()["message"] == (
        "no report named 'nope.txt' in this run; known: chaos-report.html, chaos-report.json, chaos-report.md, "
        "chaos-report.xml")
    rows = ui.tab_rows()
    assert ("chaos-report.html", "/chaos/reports/chaos-report.html") in [(r["item"], r["value"]) for r in rows if r["kind"] == "Report"]
    assert [(r["item"], r["state"]) for r in rows if r["kind"] == "Timeline"] == [
        ("f0#1 pause sleeper", "reverted"), ("f1#1 pause sleeper", "not reached")]


def test_page_is_self_contained_and_knows_its_urls(ui):
    resp = ui.client.get("/chaos/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '"state_url": "/chaos/state"' in html and '"abort_url": "/chaos/abort"' in html
    assert 'id="abort"' in html and "/*__CHAOS_CONFIG__*/" not in html
    assert "http://" not in html and "https://" not in html  # no CDN, nothing outside this server


def test_invalid_scenario_in_the_start_form_is_refused_and_no_run_starts(ui, tmp_path, scenario):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nfaults:\n  - {at: 1s, for: 2s, fault: pause, target: nope}\n")
    resp = ui.client.post("/swarm", data={"user_count": "1", "spawn_rate": "1", "host": "http://127.0.0.1:1",
                                          "chaos_plan": str(bad)})
    assert resp.get_json() == {
        "success": False, "host": "http://127.0.0.1:1",
        "message": f"Invalid scenario, run not started: {bad}:3 faults[0] (pause): unknown target 'nope'; declared targets: (none)"}
    assert ui.runner.state == "ready" and ui.web_ui._swarm_greenlet is None
    assert ui.env.parsed_options.chaos_plan == str(scenario)  # the old choice stays
    assert ui.session.plan.name == "webui-pause"


def test_missing_scenario_file_is_refused_with_its_name(ui, tmp_path):
    resp = ui.client.post("/swarm", data={"user_count": "1", "spawn_rate": "1", "chaos_plan": str(tmp_path / "no.yml")})
    assert resp.get_json()["message"] == f"Invalid scenario, run not started: {tmp_path / 'no.yml'}: scenario file not found"
    assert ui.runner.state == "ready"


def test_valid_scenario_in_the_form_is_used_and_cannot_change_mid_run(ui, tmp_path, sleeper):
    import gevent

    other = tmp_path / "other.yml"
    other.write_text(SCENARIO.format(pidfile=tmp_path / "sleeper.pid").replace("name: webui-pause", "name: other"))
    resp = ui.client.post("/swarm", data={"user_count": "1", "spawn_rate": "1", "chaos_plan": str(other)})
    assert resp.get_json()["success"] is True
    assert ui.session.plan.name == "other" and ui.env.parsed_options.chaos_plan == str(other)
    gevent.sleep(0.2)  # let Locust's swarm greenlet start the runner
    assert ui.runner.state in ("spawning", "running")
    resp = ui.client.post("/swarm", data={"user_count": "2", "spawn_rate": "1", "chaos_plan": str(tmp_path / "x.yml")})
    assert resp.get_json()["message"] == (
        f"chaos_plan: the scenario cannot change during a run (running: {other}, asked for: {tmp_path / 'x.yml'}); "
        "stop the run first")
    assert ui.session.plan.name == "other"


def test_abort_and_scenario_change_need_the_login_when_login_is_on(tmp_path, scenario, sleeper, monkeypatch):
    from flask_login import UserMixin

    monkeypatch.setattr(sys, "argv", ["locust"])
    ui = Harness(tmp_path, scenario, web_login=True)

    class Operator(UserMixin):
        id = "operator"

    # --web-login needs the locustfile to provide a user loader (Locust's docs); this one knows one operator.
    ui.web_ui.login_manager.user_loader(lambda user_id: Operator() if user_id == "operator" else None)
    try:
        ui.session.start()
        ui.session.engine.tick()
        assert proc_state(sleeper.pid) == "T"
        for path in ("/chaos/state", "/chaos/", "/chaos/reports/chaos-report.json"):
            resp = ui.client.get(path)
            assert resp.status_code == 302 and "/login" in resp.headers["Location"], path
        resp = ui.client.post("/chaos/abort")
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
        assert ui.aborts == 0 and proc_state(sleeper.pid) == "T"
        resp = ui.client.post("/swarm", data={"user_count": "1", "spawn_rate": "1", "chaos_plan": str(tmp_path / "no.yml")})
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
        assert ui.env.parsed_options.chaos_plan == str(scenario)

        with ui.client.session_transaction() as flask_session:
            flask_session["_user_id"] = "operator"
            flask_session["_fresh"] = True
        resp = ui.client.post("/chaos/abort")
        assert resp.status_code == 200 and resp.get_json()["ok"] is True
        assert ui.aborts == 1 and proc_state(sleeper.pid) != "T"
    finally:
        ui.close()


# -- the pure view ---------------------------------------------------------------------------------------------------
def _plan():
    text = ("name: p\ntargets:\n  a: {process: {pidfile: a.pid}}\nfaults:\n"
            "  - {at: 1s, for: 2s, fault: pause, target: a}\n  - {at: 5s, for: 2s, fault: pause, target: a}\n"
            "  - {at: 9s, for: 2s, fault: pause, target: a}\n")
    return parse_plan(text, "p.yml")


def _event(t, kind, oid, detail=""):
    return FaultEvent(t, 1000.0 + t, kind, oid, "pause", "a", detail)


def test_timeline_states_follow_the_fault_events():
    plan = _plan()
    events = [_event(1.0, FaultEventKind.INJECT_FAILED, "f0#1", "no such process"),
              _event(1.1, FaultEventKind.REVERTED, "f0#1", "inject failed"),
              _event(5.0, FaultEventKind.INJECTED, "f1#1", "pause a"),
              _event(7.0, FaultEventKind.REVERT_FAILED, "f1#1", "still stopped"),
              _event(8.0, FaultEventKind.ABORTED, "f2#1", "aborted from the web UI")]
    rows = timeline_view(plan, events, run_over=False)
    assert [(r.occurrence_id, r.state, r.started_t, r.ended_t) for r in rows] == [
        ("f0#1", OccurrenceState.FAILED, 1.0, 1.1),
        ("f1#1", OccurrenceState.FAILED, 5.0, 7.0),
        ("f2#1", OccurrenceState.CANCELLED, None, None)]
    assert rows[0].detail == "inject failed: no such process"
    assert rows[1].detail == "REVERT FAILED, target left degraded: still stopped"
    assert [(r.planned_start_t, r.planned_end_t) for r in rows] == [(1.0, 3.0), (5.0, 7.0), (9.0, 11.0)]


def test_timeline_marks_unreached_faults_once_the_run_is_over():
    plan = _plan()
    events = [_event(1.0, FaultEventKind.INJECTED, "f0#1"), _event(3.0, FaultEventKind.REVERTED, "f0#1", "time up")]
    assert [r.state for r in timeline_view(plan, events, run_over=False)] == [
        OccurrenceState.REVERTED, OccurrenceState.PLANNED, OccurrenceState.PLANNED]
    assert [r.state for r in timeline_view(plan, events, run_over=True)] == [
        OccurrenceState.REVERTED, OccurrenceState.NOT_REACHED, OccurrenceState.NOT_REACHED]
    assert timeline_view(plan, events, run_over=True)[0].detail == "reverted (time up)"


def test_no_session_gives_one_row_that_says_so():
    view = chaos_view(None, "ready")
    assert view == {"enabled": False, "message": "chaos-events is not active in this process", "runner_state": "ready"}
    assert tab_rows(view) == [{"kind": "Run", "item": "chaos-events", "state": "off", "value": "",
                               "detail": "chaos-events is not active in this process"}]


def test_detection_and_recovery_rows_show_the_times_once_known():
    view = {"enabled": True, "running": True, "run_id": "r1", "scenario": "s", "t": 42.0, "phase": "recovery",
            "active": [], "slos": [], "reports": [],
            "timeline": [{"occurrence_id": "f0#1", "fault": "pause", "target": "a", "planned_start_t": 3.0,
                          "planned_end_t": 13.0, "state": "reverted", "started_t": 3.0, "ended_t": 13.0,
                          "detail": "reverted (time up)"}],
            "detection_measured": True, "detection_s": 4.25, "recovery_measured": True, "recovery_s": None}
    rows = tab_rows(view)
    assert [(r["kind"], r["state"], r["value"]) for r in rows if r["kind"] in ("Detection", "Recovery")] == [
        ("Detection", "known", "4.2s"), ("Recovery", "not yet", "—")]
    assert ("Timeline", "f0#1 pause a", "reverted", "planned t=3.0s → t=13.0s; ran t=3.0s → t=13.0s") in [
        (r["kind"], r["item"], r["state"], r["value"]) for r in rows]
    assert ("Active now", "no fault active") in [(r["kind"], r["item"]) for r in rows]
