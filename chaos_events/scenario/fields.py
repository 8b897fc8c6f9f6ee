"""The value types of a scenario, shared by every typed model: durations, sizes, ratios, text, commands, URLs, ports.

Pure: standard library and pydantic only. Each type is an `Annotated` alias that a model field uses as its type; its
validator turns what YAML gives (a number, `30s`, `64MB`, `10%`, a list of words) into one Python value and refuses
everything else with a message in the project's words (`must not be negative; got '-5s'`), raised as a
`PydanticCustomError` so the loader can place it at the field's line. A `Unit` marker in the metadata tells the
generated reference and JSON Schema what the number means.

One parser per kind of value: `parse_number` (also for whole numbers of any size), `parse_port`, `parse_duration`,
`parse_size_bytes`. Nothing else in the package converts these by hand.

Example:
    class LatencyParams(ScenarioModel):
        latency_ms: Milliseconds
    LatencyParams.model_validate({"latency_ms": "1s"}).latency_ms == 1000.0
"""
from __future__ import annotations

import datetime
import math
import shlex
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Callable
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, TypeAdapter, WithJsonSchema
from pydantic_core import PydanticCustomError

from chaos_events.scenario.units import DURATION_FORMS, SIZE_FORMS, parse_duration, parse_size_bytes

CUSTOM_ERROR = "chaos"
PYTHON_NAMES = ("python", "python3")
_MAX_SHOWN = 40


class ScenarioModel(BaseModel):
    """Base of every typed scenario model: frozen, unknown keys refused, values never coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True)


@dataclass(frozen=True)
class Unit:
    """What a number means, for the reference and the schema: `Unit("seconds", "30s")`."""

    name: str
    example: str = ""


def fail(message: str) -> PydanticCustomError:
    """An error whose text is ours; the loader prefixes the field (`'at': must not be negative; got '-5s'`)."""
    return PydanticCustomError(CUSTOM_ERROR, "{message}", {"message": message})


def shown(value: Any) -> str:
    """What we received, for 'expected X; got Y': strings quoted, containers named, long values cut."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (bytes, bytearray)):
        return "binary data (!!binary)"
    if isinstance(value, (set, frozenset)):
        return "a set (!!set)"
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 128 else f"{str(value)[:20]}... ({len(str(abs(value)))} digits)"
        return text
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 4] + "...'"


# -- numbers ---------------------------------------------------------------------------------------------------
def parse_number(value: Any, whole: bool = False, percent: bool = False) -> float | int:
    """A YAML number (or `10%` when `percent`) as float, or as int when `whole`. Never OverflowError or NaN."""
    if percent and isinstance(value, str) and value.isascii() and value.strip().endswith("%"):  # not '٣%'
        try:
            value = float(value.strip()[:-1]) / 100.0
        except ValueError:
            pass
    kind = "a whole number" if whole else ("a number or a percentage like 10%" if percent else "a number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"expected {kind}; got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(f"expected {kind}; got {shown(value)}")
    if whole:
        if isinstance(value, float):
            if not value.is_integer():
                raise fail(f"expected {kind}; got {shown(value)}")
            value = int(value)
        if value.bit_length() > 63:  # no count, port or size in a scenario is that big; 10**400 is a typo
            raise fail(f"expected a whole number of reasonable size; got {shown(value)}")
        return value
    try:
        return float(value)
    except OverflowError:  # an int of 309 digits or more
        raise fail(f"expected a number of reasonable size; got {shown(value)}") from None


def _number_type(whole: bool, percent: bool = False, unit: Unit | None = None) -> Any:
    base = int if whole else float
    schema: dict[str, Any] = {"type": "integer" if whole else "number"}
    if percent:
        schema = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"}]}
    extra = (unit,) if unit else ()
    return Annotated[base, BeforeValidator(lambda v: parse_number(v, whole=whole, percent=percent)),
                     WithJsonSchema(schema), *extra]


Number = _number_type(whole=False)
WholeNumber = _number_type(whole=True)
Ratio = _number_type(whole=False, percent=True, unit=Unit("ratio", "0.05 or 5%"))
Flag = Annotated[bool, Strict()]


# -- durations and sizes ---------------------------------------------------------------------------------------
def _duration(value: Any, factor: float = 1.0) -> float:
    if isinstance(value, (list, dict)):
        raise fail(f"expected a duration like 30s; got {shown(value)}")
    if isinstance(value, str) and not value.isascii():  # Python's float() reads '٣' as 3; a scenario must not
        raise fail(f"expected {DURATION_FORMS} (in ASCII digits); got {shown(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        raise fail(f"expected a duration of reasonable size; got {shown(value)}")
    try:
        return parse_duration(value) * factor
    except ValueError as exc:
        raise fail(str(exc)) from None


def _size(value: Any) -> int:
    if isinstance(value, str) and not value.isascii():  # Decimal() reads '٣' as 3; a scenario must not
        raise fail(f"expected {SIZE_FORMS} (in ASCII digits); got {shown(value)}")
    try:
        size = parse_size_bytes(value)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if size.bit_length() > 63:
        raise fail(f"expected a size below 8 EiB; got {shown(value)}")
    return size


_DURATION_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h))+\s*$|^\s*\d+(\.\d+)?\s*$"}]}
Seconds = Annotated[float, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA), Unit("seconds", "30s")]
Milliseconds = Annotated[float, BeforeValidator(lambda v: _milliseconds(v)), WithJsonSchema(_DURATION_SCHEMA),
                         Unit("milliseconds", "200 or 200ms")]
SizeBytes = Annotated[int, BeforeValidator(_size), WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                                                                             {"type": "string"}]}),
                      Unit("bytes", "64MB, 1GiB or a number of bytes")]


def _milliseconds(value: Any) -> float:
    """A bare number is milliseconds; a string is a duration (`1s` is 1000 ms)."""
    if isinstance(value, str):
        return _duration(value, 1000.0)
    number = parse_number(value)
    if number < 0:
        raise fail(f"must not be negative; got {shown(value)}")
    return number


# -- text ------------------------------------------------------------------------------------------------------
def parse_text(value: Any, allow_empty: bool = False) -> str:
    """Text as written (a YAML number counts as its text); stripped; empty refused unless allowed."""
    # A number or a date reads as its text; anything else (`!!binary`, `!!set`, a list) would become "b'...'".
    if isinstance(value, bool) or not isinstance(value, (str, int, float, datetime.date)):
        raise fail(f"expected text; got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(f"expected text; got {shown(value)}")
    text = (value if isinstance(value, str) else str(value)).strip()
    if "\x00" in text:  # no path, name or command may hold one: the OS refuses it later, far from the line
        raise fail(f"must not contain a NUL character; got {shown(text)}")
    if not text and not allow_empty:
        raise fail("must not be empty")
    return text


def parse_text_list(value: Any, allow_empty: bool = True) -> tuple[str, ...]:
    """Text or a list of text -> tuple."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = tuple(parse_text(item) for item in items)
    if not out and not allow_empty:
        raise fail("must list at least one")
    return out


_TEXT_LIST_SCHEMA = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
Text = Annotated[str, BeforeValidator(parse_text), WithJsonSchema({"type": "string", "minLength": 1})]
AnyText = Annotated[str, BeforeValidator(lambda v: parse_text(v, allow_empty=True)), WithJsonSchema({"type": "string"})]
TextList = Annotated[tuple[str, ...], BeforeValidator(parse_text_list), WithJsonSchema(_TEXT_LIST_SCHEMA)]
NonEmptyTextList = Annotated[tuple[str, ...], BeforeValidator(lambda v: parse_text_list(v, allow_empty=False)),
                             WithJsonSchema(_TEXT_LIST_SCHEMA)]


def parse_url_path(value: Any) -> str:
    text = parse_text(value)
    if not text.startswith("/"):
        raise fail(f"expected a path starting with '/'; got {shown(text)}")
    return text


UrlPath = Annotated[str, BeforeValidator(parse_url_path), WithJsonSchema({"type": "string", "pattern": "^/"})]


def choices(*allowed: str, at_least_one: bool = True) -> Any:
    """A list of values from `allowed` (or one value): `'kinds': unknown kind 'x'; expected one of: ...`."""
    ordered = tuple(sorted(allowed))

    def check(value: Any) -> tuple[str, ...]:
        items = parse_text_list(value)
        if at_least_one and not items:
            raise fail(f"expected at least one of: {', '.join(ordered)}")
        for item in items:
            if item not in allowed:
                raise fail(f"unknown kind {shown(item)}; expected one of: {', '.join(ordered)}")
        return items

    schema = {"anyOf": [{"enum": list(ordered)}, {"type": "array", "items": {"enum": list(ordered)}}]}
    return Annotated[tuple[str, ...], BeforeValidator(check), WithJsonSchema(schema)]


def choice(*allowed: str) -> Any:
    """Text that must be one of `allowed`: `'mode': unknown value 'x'; expected one of: reset, stall`."""
    ordered = tuple(sorted(allowed))

    def check(value: Any) -> str:
        text = parse_text(value)
        if text not in allowed:
            raise fail(f"unknown value {shown(text)}; expected one of: {', '.join(ordered)}")
        return text

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"enum": list(ordered)})]


def parse_command(value: Any) -> tuple[str, ...]:
    """A command: a list of words, or one string split like a shell would. `python` is this interpreter."""
    if isinstance(value, str):
        text = parse_text(value)
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise fail(f"cannot split the command: {exc}") from None
    else:
        words = list(parse_text_list(value))
    if not words:
        raise fail("must not be empty")
    if words[0] in PYTHON_NAMES:  # the harness's own interpreter: a scenario works from a venv that is not active
        words[0] = sys.executable
    return tuple(words)


Command = Annotated[tuple[str, ...], BeforeValidator(parse_command), WithJsonSchema(_TEXT_LIST_SCHEMA)]


# -- addresses -------------------------------------------------------------------------------------------------
def parse_port(text: Any) -> int:
    """A TCP port, 1..65535, written in ASCII digits ('①' and '²' are not digits here)."""
    if isinstance(text, int) and not isinstance(text, bool):
        port = text
    else:
        raw = str(text).strip()
        if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > 5:
            raise ValueError(f"expected a port from 1 to 65535; got {shown(text)}")
        port = int(raw)
    if not 1 <= port <= 65535:
        raise ValueError(f"expected a port from 1 to 65535; got {shown(text)}")
    return port


def split_address(text: str) -> tuple[str, int]:
    """`host:port` or `[::1]:port` -> (host, port); ValueError naming the expected form."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ValueError(f"expected host:port; got {shown(text)}")
    try:
        return host, parse_port(port)
    except ValueError:
        raise ValueError(f"expected host:port with a port from 1 to 65535; got {shown(text)}") from None


def parse_http_url(value: Any) -> str:
    """An http(s) URL with a host and a valid port."""
    text = parse_text(value)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise fail(f"expected a URL like http://127.0.0.1:8000; got {shown(text)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(f"expected a URL like http://127.0.0.1:8000; got {shown(text)}")
    return text


def parse_bootstrap(value: Any) -> str:
    """Kafka bootstrap servers: `host:port[,host:port]`."""
    text = parse_text(value)
    for server in text.split(","):
        try:
            split_address(server)
        except ValueError as exc:
            raise fail(str(exc)) from None
    return text


HttpUrl = Annotated[str, BeforeValidator(parse_http_url), WithJsonSchema({"type": "string", "format": "uri"})]
Bootstrap = Annotated[str, BeforeValidator(parse_bootstrap), WithJsonSchema({"type": "string"})]


_ADAPTERS: dict[int, tuple[Any, TypeAdapter]] = {}


def adapter(kind: Any) -> TypeAdapter:
    """The TypeAdapter of a field type (`Seconds`, `Text`), built once: building one costs more than validating."""
    cached = _ADAPTERS.get(id(kind))
    if cached is None or cached[0] is not kind:  # the type is kept with it, so its id is never reused
        cached = _ADAPTERS[id(kind)] = (kind, TypeAdapter(kind))
    return cached[1]


def markers_of(info: Any) -> list[Any]:
    """Every metadata item of a model field, also inside Annotated aliases and unions
    (`Annotated[Text, RefersTo(...)] | None`): where Unit and RefersTo markers are found."""
    found = list(getattr(info, "metadata", None) or [])
    stack = [getattr(info, "annotation", None)]
    while stack:
        kind = stack.pop()
        found.extend(getattr(kind, "__metadata__", ()) or ())
        stack.extend(getattr(kind, "__args__", ()) or ())
    return found


def unit_of(metadata: list[Any]) -> Unit | None:
    """The Unit marker among a field's metadata, if any."""
    return next((m for m in metadata if isinstance(m, Unit)), None)


FORMS = {"seconds": DURATION_FORMS, "bytes": SIZE_FORMS}
Validator = Callable[[Any], Any]
