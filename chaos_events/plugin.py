"""All Locust event wiring, and nothing else. The only module (with users.py) that imports locust.

(Skeleton: options only; the full wiring lands with the integration work.)
"""
from __future__ import annotations

from locust import events

from .options import add_options


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs):
    add_options(parser)
