"""The live game-day view in Locust's web UI: a "Chaos" tab, a self-contained `/chaos` page with an Abort button,
the run's reports, and the scenario check that refuses an invalid scenario before a run starts from the form. The
safety rules (cross-origin writes, scenario paths outside the scenario directory) live in web_guard.py.

An adapter over one ChaosSession. It must not import locust (wiring.py hands it the `web_ui` and the
`environment`), gevent, docker or prometheus_client; it uses Flask, which Locust's web UI is built on. Everything
it shows is derived, on each request, from the session's plan, record, engine and provisional verdict: nothing
here is a second source of truth.

Locust 2.47's React UI (verified in locust/webui/dist): `template_args["extended_tabs"]` adds a tab,
`template_args["extended_tables"]` gives its columns, and the `extended_stats` key of `/stats/requests` carries its
rows. Cells render as plain text, so links and the Abort button live on `/chaos`, which the "Download Data" tab
links to (`extended_csv_files` entries render as links) and the tab's rows name.
"""
from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from flask import Blueprint, Response, jsonify, request, send_from_directory, url_for

from chaos_events.locust_plugin.web_guard import refuse_cross_origin_writes, scenario_directory, scenario_path_refusal
from chaos_events.scenario.model import Plan, SloMetric
from chaos_events.record import FaultEventKind
from chaos_events.run.timeline import Action, schedule
from chaos_events.verdict.phases import current_phase
from chaos_events.verdict.report import format_value
from chaos_events.verdict.slo import SloStatus

logger = logging.getLogger("chaos_events")

TAB_KEY = "chaos"
TAB_TITLE = "Chaos"
TAB_COLUMNS = (("kind", "Kind"), ("item", "Name"), ("state", "State"), ("value", "When / value"), ("detail", "Detail"))
# Column keys: the React table sorts by a `name` key by default, so none is called that and the rows keep our order.
RUNNING_STATES = ("spawning", "running")   # Locust runner states in which the scenario must not change
FORM_PLAN_FIELD = "chaos_plan"
STATUS_WORD = {SloStatus.PASS: "PASS", SloStatus.FAIL: "FAIL", SloStatus.NOT_VERIFIABLE: "N/A"}
_PAGE_CONFIG_MARK = "/*__CHAOS_CONFIG__*/null"


class OccurrenceState(enum.Enum):
    """Where one occurrence of a planned fault is in its life, as the timeline shows it."""

    PLANNED = "planned"          # not injected yet
    ACTIVE = "active"            # injected, not reverted
    REVERTED = "reverted"        # injected and reverted (time up, abort or end of run)
    FAILED = "failed"            # its inject or its revert failed
    CANCELLED = "cancelled"      # aborted before it started
    DRY_RUN = "dry run"          # a dry run would have injected it
    NOT_REACHED = "not reached"  # the run ended before its time


@dataclass(frozen=True)
class Occurrence:
    """One row of the timeline. Times are run seconds; `started_t`/`ended_t` are None until they happen."""

    occurrence_id: str
    fault: str
    target: str
    planned_start_t: float
    planned_end_t: float
    state: OccurrenceState
    started_t: float | None = None
    ended_t: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"occurrence_id": self.occurrence_id, "fault": self.fault, "target": self.target,
                "planned_start_t": self.planned_start_t, "planned_end_t": self.planned_end_t,
                "state": self.state.value, "started_t": self.started_t, "ended_t": self.ended_t, "detail": self.detail}


# -- the view: a JSON-able dict derived from the session ------------------------------------------------------------
def timeline_view(plan: Plan, events: list, run_over: bool) -> list[Occurrence]:
    """Every planned occurrence with its state, from the plan's schedule and the record's fault events."""
    planned: dict[str, list] = {}
    for step in schedule(plan):
        entry = planned.setdefault(step.occurrence_id, [step.spec, step.t, step.t])
        if step.action is Action.REVERT:
            entry[2] = step.t
    by_id: dict[str, list] = {oid: [] for oid in planned}
    for event in events:
        if event.fault_id in by_id:
            by_id[event.fault_id].append(event)
    rows = []
    for oid, (spec, start_t, end_t) in planned.items():
        state = OccurrenceState.NOT_REACHED if run_over else OccurrenceState.PLANNED
        started = ended = None
        detail = ""
        for event in by_id[oid]:
            kind = event.kind
            if kind is FaultEventKind.INJECTED:
                state, started, detail = OccurrenceState.ACTIVE, event.t, event.detail
            elif kind is FaultEventKind.INJECT_FAILED:
                state, started, detail = OccurrenceState.FAILED, event.t, f"inject failed: {event.detail}"
            elif kind is FaultEventKind.REVERTED:
                ended = event.t
                if state is not OccurrenceState.FAILED:  # the cleanup after a failed inject stays a failure
                    state, detail = OccurrenceState.REVERTED, f"reverted ({event.detail})" if event.detail else "reverted"
            elif kind is FaultEventKind.REVERT_FAILED:
                state, ended = OccurrenceState.FAILED, event.t
                detail = f"REVERT FAILED, target left degraded: {event.detail}"
            elif kind is FaultEventKind.ABORTED:
                state, detail = OccurrenceState.CANCELLED, f"cancelled ({event.detail})" if event.detail else "cancelled"
            elif kind is FaultEventKind.PLANNED:
                state, detail = OccurrenceState.DRY_RUN, event.detail
        rows.append(Occurrence(oid, spec.type, spec.target, start_t, end_t, state, started, ended, detail))
    return sorted(rows, key=lambda r: (r.planned_start_t, r.occurrence_id))


def chaos_view(session: Any, runner_state: str = "") -> dict[str, Any]:
    """The whole live view of a ChaosSession (or None) as plain JSON-able data; read by /chaos/state and the tab."""
    if session is None:
        return {"enabled": False, "message": "chaos-events is not active in this process", "runner_state": runner_state}
    record = session.record
    started = record.run_id != "idle"
    engine = session.engine if started and session.engine is not None and session.engine.record is record else None
    plan = engine.plan if engine is not None else session.plan
    run_over = started and not session.running
    t = session.clock() if session.running else record.end_t
    view: dict[str, Any] = {
        "enabled": True,
        "runner_state": runner_state,
        "scenario": plan.name if plan else "",
        "scenario_source": plan.source if plan else "",
        "description": plan.description if plan else "",
        "run_id": record.run_id if started else None,
        "running": bool(session.running),
        "final": bool(session.state.final),
        "t": t,
        # Fresh from the events (cheap), so an abort shows at once instead of at the next provisional verdict.
        "phase": (current_phase(record, plan, t).value if session.running else session.state.phase)
                 if started and plan and t is not None else None,
        "active": [],
        "timeline": [],
        "slos": [],
        "detection_s": None,
        "recovery_s": None,
        "reports": [],
        "can_abort": bool(session.running and engine is not None and not engine.finished
                          and (engine.active() or engine.planned())),
    }
    if plan is None:
        view["message"] = "No scenario: load only. Choose one with the chaos_plan field of the start form."
        return view
    if engine is not None:
        view["active"] = [{"occurrence_id": a.occurrence_id, "fault": a.fault_type, "target": a.target,
                           "started_t": a.started_t, "ends_t": a.ends_t, "description": a.description}
                          for a in engine.active()]
    view["timeline"] = [o.to_dict() for o in timeline_view(plan, record.events if started else [], run_over)]
    view["slos"], view["detection_s"], view["recovery_s"] = _slo_view(plan, session.state.verdict if started else None)
    declared = {slo.metric for slo in plan.slos}
    view["detection_measured"] = SloMetric.DETECTION_TIME in declared
    view["recovery_measured"] = SloMetric.RECOVERY_TIME in declared
    view["reports"] = [{"kind": kind, "name": Path(path).name} for kind, path in sorted(session.state.reports.items())]
    return view


def _slo_view(plan: Plan, verdict: Any) -> tuple[list[dict[str, Any]], float | None, float | None]:
    results = {r.name: r for r in verdict.results} if verdict is not None else {}
    rows = []
    detection = recovery = None
    for spec in plan.slos:
        result = results.get(spec.name)
        if result is None:
            rows.append({"name": spec.name, "metric": spec.metric.value, "status": "pending", "value": None,
                         "limit": None, "unit": "", "value_text": "—", "limit_text": "—",
                         "message": "not judged yet (the first provisional verdict comes a few seconds into the run)"})
            continue
        rows.append({"name": result.name, "metric": result.metric.value, "status": STATUS_WORD[result.status],
                     "value": result.value, "limit": result.limit, "unit": result.unit,
                     "value_text": format_value(result.value, result.unit),
                     "limit_text": format_value(result.limit, result.unit), "message": result.message})
        if result.metric is SloMetric.DETECTION_TIME and result.value is not None:
            detection = result.value
        if result.metric is SloMetric.RECOVERY_TIME and result.value is not None:
            recovery = result.value
    return rows, detection, recovery


def _t(value: float | None) -> str:
    return "—" if value is None else f"t={value:.1f}s"


def tab_rows(view: dict[str, Any], page_path: str = "/chaos/") -> list[dict[str, str]]:
    """The Chaos tab's rows (plain text cells, keys as TAB_COLUMNS) from a chaos_view."""
    if not view.get("enabled"):
        return [_row("Run", "chaos-events", "off", "", view.get("message", ""))]
    state = "running" if view["running"] else ("finished" if view["run_id"] else "idle")
    rows = [_row("Run", view["scenario"] or "(no scenario)", state, _t(view["t"]),
                 f"phase: {view['phase'] or '—'}; live view, reports and Abort chaos: {page_path}")]
    if view.get("message"):
        rows.append(_row("Run", "note", "", "", view["message"]))
    for a in view["active"]:
        rows.append(_row("Active now", f"{a['fault']} {a['target']}", "active",
                         f"since {_t(a['started_t'])}, until {_t(a['ends_t'])}", f"{a['occurrence_id']}: {a['description']}"))
    if view["timeline"] and not view["active"]:
        rows.append(_row("Active now", "no fault active", "", "", ""))
    for o in view["timeline"]:
        ran = ""
        if o["started_t"] is not None:
            ran = f"; ran {_t(o['started_t'])} → {_t(o['ended_t'])}" if o["ended_t"] is not None else f"; since {_t(o['started_t'])}"
        rows.append(_row("Timeline", f"{o['occurrence_id']} {o['fault']} {o['target']}", o["state"],
                         f"planned {_t(o['planned_start_t'])} → {_t(o['planned_end_t'])}{ran}", o["detail"]))
    for s in view["slos"]:
        rows.append(_row("SLO", f"{s['name']} ({s['metric']})", s["status"],
                         f"{s['value_text']} (limit {s['limit_text']})", s["message"]))
    if view["timeline"]:
        for kind, what, key, metric in (("Detection", "time to detect", "detection", "detection_time"),
                                        ("Recovery", "time to recover", "recovery", "recovery_time")):
            if not view[f"{key}_measured"]:
                rows.append(_row(kind, what, "not measured", "—", f"the scenario has no {metric} SLO"))
            else:
                known = view[f"{key}_s"] is not None
                rows.append(_row(kind, what, "known" if known else "not yet", format_value(view[f"{key}_s"], "s"), ""))
    for r in view["reports"]:
        rows.append(_row("Report", r["name"], "ready", f"{page_path}reports/{r['name']}", f"open it from {page_path}"))
    return rows


def _row(kind: str, name: str, state: str, value: str, detail: str) -> dict[str, str]:
    return {"kind": kind, "item": name, "state": state, "value": value, "detail": detail}


# -- wiring into Locust's web UI -------------------------------------------------------------------------------------
def install_chaos_tab(web_ui: Any, environment: Any, get_session: Callable[[], Any],
                      reload_plan: Callable[[], str | None], abort: Callable[[], None]) -> Blueprint:
    """Add the Chaos tab, the /chaos page and its routes, and the start-form scenario check to Locust's web UI.

    `reload_plan()` re-reads `environment.parsed_options.chaos_plan` and returns an error message or None;
    `abort()` reverts every active fault and cancels the rest of the timeline.
    """
    options = environment.parsed_options
    base = (getattr(options, "web_base_path", None) or "").rstrip("/")
    blueprint = Blueprint("chaos_events", __name__, url_prefix=f"{base}/chaos")
    guard = web_ui.auth_required_if_enabled
    refuse_cross_origin_writes(web_ui.app)  # before every hook and route below: a refused request touches nothing

    def runner_state() -> str:
        runner = environment.runner
        return str(runner.state) if runner is not None else ""

    def page_path() -> str:
        return url_for("chaos_events.page")

    @blueprint.route("/", methods=["GET"])
    @guard
    def page() -> Response:
        config = {"state_url": url_for("chaos_events.state"), "abort_url": url_for("chaos_events.abort_chaos"),
                  "reports_url": page_path() + "reports/", "locust_url": (base or "") + "/"}
        # `</` cannot close the script element from inside JSON once escaped.
        html = _page_html().replace(_PAGE_CONFIG_MARK, json.dumps(config).replace("</", "<\\/"))
        return Response(html, mimetype="text/html")

    @blueprint.route("/state", methods=["GET"])
    @guard
    def state() -> Response:
        return jsonify(chaos_view(get_session(), runner_state()))

    @blueprint.route("/abort", methods=["POST"])
    @guard
    def abort_chaos() -> Response:
        session = get_session()
        view = chaos_view(session, runner_state())
        if not view.get("can_abort"):
            view.update(ok=False, message="Nothing to abort: no fault is active or planned in a running chaos run.")
            return jsonify(view), 409
        abort()
        view = chaos_view(session, runner_state())
        view.update(ok=True, message="Chaos aborted: every active fault reverted, the rest of the timeline "
                                     "cancelled; the load keeps running.")
        return jsonify(view)

    @blueprint.route("/reports/<name>", methods=["GET"])
    @guard
    def report_file(name: str) -> Response:
        session = get_session()
        known = {Path(p).name: Path(p) for p in (session.state.reports.values() if session is not None else ())}
        path = known.get(name)
        if path is None or not path.is_file():
            return jsonify({"ok": False, "message": f"no report named {name!r} in this run; "
                                                    f"known: {', '.join(sorted(known)) or 'none yet'}"}), 404
        # Only the files this run wrote, served from their own directory (send_from_directory refuses `..`).
        return send_from_directory(path.parent.resolve(), path.name, max_age=0)

    web_ui.app.register_blueprint(blueprint)

    _install_tab_rows(web_ui, get_session, runner_state, base)
    _install_scenario_check(web_ui, environment, guard, reload_plan, runner_state)
    return blueprint


def _install_tab_rows(web_ui: Any, get_session: Callable[[], Any], runner_state: Callable[[], str], base: str) -> None:
    """The Chaos tab's shape in the React UI's template args, and its rows in every /stats/requests answer."""
    args = web_ui.template_args
    args["extended_tabs"] = [t for t in args.get("extended_tabs", []) if t.get("key") != TAB_KEY] + \
        [{"title": TAB_TITLE, "key": TAB_KEY}]
    args["extended_tables"] = [t for t in args.get("extended_tables", []) if t.get("key") != TAB_KEY] + \
        [{"key": TAB_KEY, "structure": [{"key": k, "title": title} for k, title in TAB_COLUMNS]}]
    link = {"href": f"{base}/chaos/", "title": "Chaos: live game-day view, Abort chaos, reports"}
    args["extended_csv_files"] = [f for f in args.get("extended_csv_files", []) if f.get("href") != link["href"]] + [link]

    @web_ui.app.after_request
    def add_chaos_rows(response: Response) -> Response:
        if request.endpoint != "locust.request_stats" or response.status_code != 200 or not response.is_json:
            return response
        try:
            data = json.loads(response.get_data(as_text=True))
            rows = tab_rows(chaos_view(get_session(), runner_state()), f"{base}/chaos/")
        except Exception:  # the stats table must keep working even if the chaos view breaks
            logger.exception("chaos-events: could not build the Chaos tab rows")
            return response
        extended = [e for e in data.get("extended_stats") or [] if e.get("key") != TAB_KEY]
        data["extended_stats"] = extended + [{"key": TAB_KEY, "data": rows}]
        # A new response: Locust memoizes /stats/requests, so the cached one must stay untouched.
        fresh = web_ui.app.response_class(json.dumps(data), status=200, mimetype="application/json")
        for header, value in response.headers.items():
            if header.lower() not in ("content-length", "content-type"):
                fresh.headers[header] = value
        return fresh


def _install_scenario_check(web_ui: Any, environment: Any, guard: Callable, reload_plan: Callable[[], str | None],
                            runner_state: Callable[[], str]) -> None:
    """Before Locust's /swarm: refuse a scenario path outside the scenario directory or an invalid scenario."""
    scenarios_dir, scenarios_dir_origin = scenario_directory(environment.parsed_options.chaos_plan)  # as started

    @web_ui.app.before_request
    def check_scenario_before_swarm() -> Response | None:
        if request.method != "POST" or request.endpoint != "locust.swarm":
            return None
        if guard(lambda: None)() is not None:
            return None  # not logged in: Locust's own /swarm view refuses it; touch nothing
        refusal = scenario_path_refusal(request.form.get(FORM_PLAN_FIELD), scenarios_dir, scenarios_dir_origin)
        if refusal is not None:
            logger.error("chaos-events: %s", refusal)
            # 200 with success false, like an invalid scenario: Locust's form shows only a 2xx answer's message (a 400
            # reads "An unknown error occurred."), and the user must see why nothing started. Nothing was read.
            return jsonify({"success": False, "message": refusal, "host": environment.host})
        message = _apply_form_and_reload(environment, reload_plan, runner_state())
        if message is None:
            return None
        logger.error("chaos-events: run not started: %s", message)
        return jsonify({"success": False, "message": message, "host": environment.host})


def _apply_form_and_reload(environment: Any, reload_plan: Callable[[], str | None], state: str) -> str | None:
    """Apply the start form's chaos options, validate the scenario; on error put the old values back. Returns the error."""
    options = environment.parsed_options
    form = request.form
    if state in RUNNING_STATES:
        # The "edit running test" form posts here too; a scenario cannot change under a running timeline.
        wanted = form.get(FORM_PLAN_FIELD)
        if wanted is not None and wanted != options.chaos_plan:
            return (f"chaos_plan: the scenario cannot change during a run (running: {options.chaos_plan or 'none'}, "
                    f"asked for: {wanted or 'none'}); stop the run first")
        return None
    saved = vars(options).copy()
    saved_host = environment.host
    for key, value in form.items():
        # The options the scenario check reads; Locust's /swarm applies them again, the same way, on success.
        if (key.startswith("chaos_") or key.startswith("kafka_")) and hasattr(options, key):
            current = getattr(options, key)
            setattr(options, key, value == "true" if isinstance(current, bool) else
                    (value if current is None else type(current)(value)))
    if "host" in form:
        environment.host = str(form["host"]).replace("<", "").replace(">", "")
    try:
        error = reload_plan()
    except Exception as exc:  # a harness bug must still refuse the run with a message, not a 500 page
        logger.exception("chaos-events: scenario check failed")
        error = f"chaos-events could not check the scenario: {type(exc).__name__}: {exc}"
    if error is not None:
        vars(options).clear()
        vars(options).update(saved)
        environment.host = saved_host
        return f"Invalid scenario, run not started: {error}"
    return None


def _page_html() -> str:
    return resources.files("chaos_events.locust_plugin").joinpath("static/chaos.html").read_text(encoding="utf-8")
