r"""Making untrusted text safe for the reports: SLO names, fault descriptions and messages carry strings from the
scenario and from failing systems, and must never break a document's structure or inject markup.

Pure module: standard library only (no gevent, locust, docker, prometheus_client, no Jinja2, no I/O).
- `printable`: characters no XML 1.0 or HTML document may carry (C0/C1 controls, lone surrogates, U+FFFE/U+FFFF)
  become visible escapes ("\x1b"), so the JUnit XML stays well-formed and every report can be encoded as UTF-8.
- `md_inline`: one line of literal Markdown text (CommonMark / GitHub): line breaks become spaces, and every
  character that could start emphasis, code, links, HTML, entities, math, a table cell or a block is escaped.
  Harmless characters stay readable in the raw file ("lost_writes", "f0#1", "-53%" are left as they are).

Example:
    md_inline("a|b <i>*x*</i>\nnext") == r"a\|b \<i\>\*x\*\</i\> next"
"""
from __future__ import annotations

import re

# Not allowed in XML 1.0 (C0 controls but tab, LF and CR; surrogates; U+FFFE/U+FFFF) or discouraged in HTML and
# XML (DEL and the C1 controls).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Everything Python's str.splitlines() splits on, so no renderer can see a second line.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")

# Always escaped: backslash, code, emphasis and strikethrough, links and images, HTML and autolinks, entities,
# GitHub math, table cells.
_MD_ALWAYS = re.compile(r"[\\`*~\[\]<>&$|]")
# "_" opens or closes emphasis only next to a non-alphanumeric character; "lost_writes" cannot.
_MD_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# "#" makes a heading at the start of a line and closes one after a space ("# title #").
_MD_HASH = re.compile(r"(?:^|(?<=\s))#")
# At the start of a list item or heading's text: a list marker ("- ", "+ ", "1. ", "1) "), a thematic break
# ("---") or a setext underline ("===").
_MD_LEADING = re.compile(r"^([-+=])(?=\s|\1|$)|^(\d{1,9})([.)])(?=\s|$)")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every character an XML or HTML document cannot carry shown as a visible escape ("\\x1b")."""
    return _UNPRINTABLE.sub(_visible, text)


def one_line(text: str) -> str:
    """`text` on one line: each line break becomes a space, leading and trailing whitespace goes."""
    return _LINE_BREAK.sub(" ", printable(text)).strip()


def md_inline(text: str) -> str:
    """`text` as literal Markdown on one line, safe in a table cell, a list item or a heading."""
    text = one_line(text)
    text = _MD_ALWAYS.sub(r"\\\g<0>", text)
    text = _MD_UNDERSCORE.sub(r"\\_", text)
    text = _MD_HASH.sub(r"\\#", text)
    return _MD_LEADING.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", text)
