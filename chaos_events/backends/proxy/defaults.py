"""Where a fault proxy's control API listens unless told otherwise: the one definition of that address.

The proxy process (cli.py), its client (client.py) and the network faults (chaos_events.faults.network) import it.
Standard library only, so importing it loads neither requests nor gevent; must not import locust, docker or
prometheus_client.
"""
from __future__ import annotations

import os

DEFAULT_CONTROL_HOST = "127.0.0.1"
DEFAULT_CONTROL_PORT = 8474          # Toxiproxy's own default
DEFAULT_CONTROL_URL = f"http://{DEFAULT_CONTROL_HOST}:{DEFAULT_CONTROL_PORT}"
CONTROL_ENV = "CHAOS_PROXY_CONTROL"


def default_control_url() -> str:
    """$CHAOS_PROXY_CONTROL, else http://127.0.0.1:8474."""
    return os.environ.get(CONTROL_ENV) or DEFAULT_CONTROL_URL
