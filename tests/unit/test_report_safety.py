"""Text from the scenario and from failing systems reaches every report: it comes out escaped in HTML and Markdown,
intact in JSON and JUnit, and never changes a document's structure. The HTML report loads nothing from anywhere.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from chaos_events.record import FaultEvent, FaultEventKind
from chaos_events.scenario.model import SloMetric
from chaos_events.verdict.report import write_reports
from chaos_events.verdict.slo import evaluate
from chaos_events.verdict.escape import md_inline, printable
from tests.unit.test_report import _run
from tests.unit.test_slo import START, inject, make_plan, revert, slo, standard_record

# Each names where it comes from, so a failure says which field leaked.
NAME = "scen<script>alert('n')</script> | `n` *n* & n\nname"
DESCRIPTION = "desc <b>bold</b> | `d` *d* _d_ & d\n# not a heading"
SLO_NAME = "slo<script>x</script>|`s`*s*&s\n- not an item"
TARGET = "tgt<img src=x onerror=alert(1)>|`t`*t*&t"
DETAIL = "detail <script>alert('d')</script> | `d` *d* & d\r\n1. not a list [link](javascript:alert(1))"
HOSTILE = (NAME, DESCRIPTION, SLO_NAME, TARGET, DETAIL)
MD_SPECIAL = "\\`*<>|&[]$"


def _scenario(name: str, description: str, slo_name: str, target: str, detail: str):
    plan = make_plan(faults=((30.0, 20.0, "pause", target),), name=name,
                     slos=[slo(SloMetric.ERROR_RATE, slo_name, max=0.1, endpoints="POST /api/events")])
    plan = type(plan)(**{**plan.__dict__, "description": description})
    rec = standard_record()
    rec.events.clear()
    inject(rec, "f0#1", 30.0, target=target)
    revert(rec, "f0#1", 50.0, target=target)
    rec.add_event(FaultEvent(50.2, START + 50.2, FaultEventKind.REVERT_FAILED, "f0#1", "pause", target, detail))
    return plan, rec, evaluate(plan, rec)


def _write(tmp_path, *fields):
    plan, rec, verdict = _scenario(*fields)
    return write_reports(verdict, plan, rec, tmp_path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("hostile"), *HOSTILE)


@pytest.fixture(scope="module")
def benign(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("benign"), "plain", "a plain scenario", "plain-slo", "plain-target", "plain detail")


# -- JSON and JUnit: the text itself --------------------------------------------------------------------------------
def test_json_keeps_every_string_intact(hostile):
    data = json.loads(hostile["json"].read_text())
    assert data["scenario"] == NAME and data["description"] == DESCRIPTION
    assert [r["name"] for r in data["verdict"]["results"]] == [SLO_NAME]
    assert {e["target"] for e in data["timeline"]} == {TARGET}
    assert data["timeline"][-1]["detail"] == DETAIL


def test_junit_keeps_every_string_intact(hostile):
    suite = ET.parse(hostile["junit"]).getroot().find("testsuite")
    assert suite.get("name") == f"chaos-events.{NAME}"
    assert [c.get("name") for c in suite.findall("testcase")] == [SLO_NAME, "faults reverted"]
    failure = suite.find("testcase[@name='faults reverted']/failure")
    assert failure.get("message").endswith(f"at t=50.2s: {DETAIL}") and failure.text.endswith(DETAIL)


def test_control_characters_keep_the_junit_parseable_and_stay_visible(tmp_path):
    detail = "docker: \x1b[31mfailed\x1b[0m\x00 \ud800"
    paths = _write(tmp_path, "s", "", "slo", "broker", detail)
    failure = ET.parse(paths["junit"]).getroot().find("testsuite/testcase[@name='faults reverted']/failure")
    assert failure.text.endswith(r"docker: \x1b[31mfailed\x1b[0m\x00 \ud800")
    assert json.loads(paths["json"].read_text())["timeline"][-1]["detail"] == detail
    assert r"\x1b[31mfailed" in paths["html"].read_text() and "\x1b" not in paths["markdown"].read_text()


# -- HTML ---------------------------------------------------------------------------------------------------------
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "table", "tr", "th", "td",
                "ul", "li", "svg", "rect", "text", "line", "polyline", "circle"}
REFERENCE_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background",
                        "cite", "ping", "manifest", "codebase"}


class _Page(HTMLParser):
    """Every tag, attribute and text node of a page, entities decoded (what a browser's DOM would hold)."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.texts: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.texts.append(data)


def _no_external_reference(page: str) -> None:
    parsed = _Page(page)
    assert set(parsed.tags) <= ALLOWED_TAGS, set(parsed.tags) - ALLOWED_TAGS
    for tag, name, value in parsed.attributes:
        assert not name.startswith("on"), (tag, name, value)
        if name in REFERENCE_ATTRIBUTES:
            assert value.startswith(("#", "data:")), (tag, name, value)
    styles = [text for text in parsed.texts if "{" in text] + [v for _, n, v in parsed.attributes if n == "style"]
    for css in styles:
        assert "@import" not in css and not re.search(r"url\(\s*['\"]?(?!data:)", css), css


def test_html_references_nothing_outside_itself():
    from chaos_events.verdict.content import build_report
    from chaos_events.verdict.documents import render_html

    plan, rec, verdict = _run(revert_failed=True)
    page = render_html(build_report(verdict, plan, rec))
    assert "http://" not in page and "https://" not in page and "src=" not in page and "//" not in page
    _no_external_reference(page)


def test_html_escapes_every_string(hostile):
    page = hostile["html"].read_text()
    _no_external_reference(page)
    parsed = _Page(page)
    assert parsed.tags.count("script") == 0 and "img" not in parsed.tags
    text = "\n".join(parsed.texts)
    for field in HOSTILE:
        # the browser shows the text itself (entities decoded), with each line break intact
        assert field.replace("\r\n", "\n") in text.replace("\r\n", "\n"), field
    svg = ET.fromstring(re.search(r"<svg\b.*?</svg>", page, re.S).group(0))  # still well-formed XML
    assert f"pause {TARGET}" in [t.text for t in svg.findall("text")]


# -- Markdown -----------------------------------------------------------------------------------------------------
def _cells(row: str) -> list[str]:
    """A GFM table row's cells: split at every "|" that no backslash escapes."""
    cells, current, escaped = [], "", False
    for char in row.strip()[1:-1] if row.strip().endswith("|") else row.strip()[1:]:
        if char == "|" and not escaped:
            cells.append(current)
            current = ""
        else:
            current += char
        escaped = char == "\\" and not escaped
    return cells + [current]


def _tables(md: str) -> list[list[str]]:
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _shape(md: str) -> list[str]:
    """What each line of a document is: heading level, list item, table row, blank or text."""
    shapes = []
    for line in md.splitlines():
        match = re.match(r"(#+ |\s*- \[ \] |\s*- |\||$)", line)
        shapes.append(match.group(1) if match else "text")
    return shapes


def _unescaped(text: str) -> str:
    """`text` with its backslash escapes resolved (what a CommonMark renderer shows)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def test_markdown_tables_have_the_same_number_of_cells_in_every_row(hostile, benign):
    for paths in (hostile, benign):
        tables = _tables(paths["markdown"].read_text())
        assert len(tables) == 3  # SLOs, phases, faults timeline
        for table in tables:
            widths = {len(_cells(row)) for row in table}
            assert widths == {len(_cells(table[0]))}, table


def test_markdown_structure_does_not_depend_on_the_text(hostile, benign):
    assert _shape(hostile["markdown"].read_text()) == _shape(benign["markdown"].read_text())


def _all_escaped(text: str, specials: str) -> bool:
    """Every character of `specials` in `text` has an odd run of backslashes before it."""
    return all(len(m.group(1)) % 2 == 1 for m in re.finditer(rf"(\\*)[{re.escape(specials)}]", text))


def test_markdown_escapes_every_string(hostile):
    md = hostile["markdown"].read_text()
    assert _all_escaped(md, "<>&$")  # the template itself uses none of these
    rows = [row for table in _tables(md) for row in table[2:]]  # below each header and delimiter row
    hostile_cells = [cell for row in rows for cell in _cells(row) if re.search("script|tgt|slo<|scen", cell)]
    assert len(hostile_cells) >= 4 and all(_all_escaped(cell, "`*[]<>&$") for cell in hostile_cells), hostile_cells
    shown = {_unescaped(cell.strip()) for row in rows for cell in _cells(row)}
    assert " ".join(SLO_NAME.split("\n")) in shown and TARGET in shown
    assert " ".join(DETAIL.split("\r\n")) in shown


@pytest.mark.parametrize("text, expected", [
    ("a|b", r"a\|b"),
    ("<script>x</script>", r"\<script\>x\</script\>"),
    ("`code` *em* **strong** ~~del~~ $math$", r"\`code\` \*em\* \*\*strong\*\* \~\~del\~\~ \$math\$"),
    ("[link](javascript:x) ![img](y)", r"\[link\](javascript:x) !\[img\](y)"),
    ("a & b &amp; c", r"a \& b \&amp; c"),
    ("one\ntwo\r\nthree\u2028four", "one two three four"),
    ("_em_ lost_writes snake__case", r"\_em\_ lost_writes snake\_\_case"),
    ("# heading #", r"\# heading \#"),
    ("f0#1", "f0#1"),
    ("- item", r"\- item"), ("+ item", r"\+ item"), ("1. item", r"1\. item"), ("2) item", r"2\) item"),
    ("---", r"\---"), ("-53%", "-53%"), ("+14.3 pts", "+14.3 pts"),
    ("back\\slash", r"back\\slash"),
    ("  padded  ", "padded"),
])
def test_md_inline(text, expected):
    assert md_inline(text) == expected
    assert _unescaped(md_inline(text)) == " ".join(text.split())  # a renderer shows the text itself, on one line


def test_printable():
    assert printable("a\x1bb\x00c\td\ne\ud800") == "a\\x1bb\\x00c\td\ne\\ud800"
