"""Parsing of human quantities (`30s`, `1m30s`, `250ms`, `64MB`) into float seconds and bytes.

Pure module: standard library only. Raises ValueError with the accepted forms; the plan loader turns that into a Problem.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_FACTORS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
DURATION_FORMS = "a number of seconds or a duration like 250ms, 30s, 2m, 1m30s, 1h"
SIZE_FORMS = "a size like 512MB, 1GiB or a number of bytes"


def parse_duration(value: object) -> float:
    """`30s` -> 30.0; a bare number is seconds. Negative durations are refused."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_FORMS}; got {value!r}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # a whole number of 309 digits or more
            raise ValueError(f"must be a finite duration of zero or more; got {_shown(value)}") from None
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.startswith("-"):
            raise ValueError(f"must not be negative; got {value!r}")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"expected {DURATION_FORMS}; got {value!r}") from None
            factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
            seconds = sum(float(n) * factor[u] for n, u in parts)
    else:
        raise ValueError(f"expected {DURATION_FORMS}; got {value!r}")
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"must be a finite duration of zero or more; got {value!r}")
    return seconds


def parse_size_bytes(value: object) -> int:
    """`64MB` -> 64_000_000; `1GiB` -> 2**30; a bare number is bytes."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {SIZE_FORMS}; got {_shown(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative; got {_shown(value)}")
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ValueError(f"expected {SIZE_FORMS}; got {_shown(value)}")
    try:  # Decimal, not float: a size of 400 digits is exact (and then refused by a cap), never an OverflowError
        return int(Decimal(match.group(1)) * _SIZE_FACTORS[match.group(2)])
    except InvalidOperation:
        raise ValueError(f"expected {SIZE_FORMS}; got {_shown(value)}") from None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def format_duration(seconds: float) -> str:
    """30.0 -> '30s', 0.25 -> '250ms', 90 -> '1m30s'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes and rest:
        return f"{int(minutes)}m{rest:g}s"
    return f"{int(minutes)}m" if minutes else f"{rest:g}s"
