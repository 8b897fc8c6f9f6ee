"""The JUnit XML report: one testcase per SLO (the failure message says what, when and by how much), plus a
"faults reverted" testcase whenever faults were injected, so CI shows a fault left behind, and a failing "data
complete" testcase when a worker was lost mid-run (every SLO was judged on partial data).

Standard library only (xml.etree serializes, so escaping is the serializer's job); no gevent, locust, docker,
prometheus_client, no I/O. Text passes `escape.printable` first: XML 1.0 cannot carry control characters at all
(a raw ESC from a tool's coloured output would make the whole file unparseable).

Example:
    ET.fromstring(render_junit(build_report(verdict, plan, record))).find("testsuite").get("failures") == "1"
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from chaos_events.verdict.escape import printable
from chaos_events.verdict.results import SloStatus


def _element(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {key: printable(value) for key, value in attributes.items()})
    if text is not None:
        element.text = printable(text)
    return element


def _counts(report: dict[str, Any]) -> dict[str, str]:
    results = report["verdict"]["results"]
    reverts = report["verdict"]["summary"].get("revert_failures", [])
    lost = 1 if report["verdict"]["summary"].get("workers_lost") else 0
    tests = len(results) + (1 if _has_revert_case(report) else 0) + lost
    failures = sum(1 for r in results if r["status"] == SloStatus.FAIL.value) + (1 if reverts else 0) + lost
    skipped = sum(1 for r in results if r["status"] == SloStatus.NOT_VERIFIABLE.value)
    return {"tests": str(tests), "failures": str(failures), "errors": "0", "skipped": str(skipped),
            "time": f"{report['duration_s']:.3f}"}


def _has_revert_case(report: dict[str, Any]) -> bool:
    injected = any(not f["from_plan"] for f in report["faults"])
    return injected or bool(report["verdict"]["summary"].get("revert_failures"))


def _slo_case(suite: ET.Element, suite_name: str, result: dict[str, Any]) -> None:
    case = _element(suite, "testcase", classname=suite_name, name=result["name"], time="0")
    headline = f"{result['metric']}: {result['message']}"
    if result["status"] == SloStatus.FAIL.value:
        _element(case, "failure", json.dumps(result["details"], indent=2, default=str),
                 message=headline, type=result["metric"])
    elif result["status"] == SloStatus.NOT_VERIFIABLE.value:
        _element(case, "skipped", message=f"not verifiable: {headline}")
    else:
        _element(case, "system-out", headline)


def _revert_case(suite: ET.Element, suite_name: str, reverts: list[dict[str, Any]]) -> None:
    # a failed revert is not an SLO, but CI must see it: the system was left degraded (exit code 4)
    case = _element(suite, "testcase", classname=suite_name, name="faults reverted", time="0")
    if reverts:
        what = "; ".join(f"{r['fault_id']} ({r['fault']}) at t={r['t']:.1f}s: {r['detail'] or 'no detail'}" for r in reverts)
        _element(case, "failure", what, message=f"revert failed: {what}", type="revert_failed")
    else:
        _element(case, "system-out", "every injected fault was reverted")


def _data_case(suite: ET.Element, suite_name: str, lost: list[dict[str, Any]]) -> None:
    # a lost worker is not an SLO either, but every SLO was judged on partial data: CI must not see a green suite
    case = _element(suite, "testcase", classname=suite_name, name="data complete", time="0")
    what = "; ".join(f"worker {w['worker']} lost at t={w['t']:.1f}s" for w in lost)
    _element(case, "failure", what + " (its requests after that are missing)",
             message=f"data incomplete: {what}", type="workers_lost")


def render_junit(report: dict[str, Any]) -> str:
    suite_name = f"chaos-events.{report['scenario']}"
    counts = _counts(report)
    root = ET.Element("testsuites", name="chaos-events", **counts)
    suite = _element(root, "testsuite", name=suite_name, **counts,
                     timestamp=report["date"].replace(" UTC", "").replace(" ", "T"))
    props = _element(suite, "properties")
    for key in ("run_id", "source", "result"):
        _element(props, "property", name=key, value=str(report[key]))
    for result in report["verdict"]["results"]:
        _slo_case(suite, suite_name, result)
    if _has_revert_case(report):
        _revert_case(suite, suite_name, report["verdict"]["summary"].get("revert_failures", []))
    if report["verdict"]["summary"].get("workers_lost"):
        _data_case(suite, suite_name, report["verdict"]["summary"]["workers_lost"])
    ET.indent(root)
    # ElementTree escapes a CR in attributes but not in text, where every XML parser would turn CRLF into LF.
    text = ET.tostring(root, encoding="unicode").replace("\r", "&#13;")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
