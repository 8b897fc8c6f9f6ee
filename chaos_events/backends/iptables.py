"""A thin adapter over `iptables -w` (the OUTPUT chain of the filter table): a chain of the harness's own, jumped to
from OUTPUT, holding DROP rules; and its removal.

Imports the standard library and chaos_events.errors only. It only ever creates, flushes and deletes chains whose
names start with CHAIN_PREFIX, and only the OUTPUT jump to such a chain: rules it did not create are never touched.

Example:
    install("CHAOS-ISOLATE-1a2b3c4d-0", [["-p", "tcp", "-m", "owner", "--gid-owner", "64000", "--dport", "9093", "-j", "DROP"]])
    remove("CHAOS-ISOLATE-1a2b3c4d-0")      # idempotent
"""
from __future__ import annotations

import os
import shutil
import subprocess

from chaos_events.errors import InjectionError, RevertError

CHAIN_PREFIX = "CHAOS-"
MAX_CHAIN_NAME = 28       # iptables' limit on a chain's name
TIMEOUT_S = 30.0


class IptablesError(InjectionError):
    """iptables is missing, refused a command, or did not answer."""


def _run(args: list[str], error: type[Exception] = IptablesError) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise error("iptables is not installed (apt-get install iptables)") from None
    except subprocess.TimeoutExpired:
        raise error(f"`iptables -w {' '.join(args)}` did not finish within {TIMEOUT_S:g} s") from None


def _check(args: list[str], error: type[Exception] = IptablesError) -> None:
    done = _run(args, error)
    if done.returncode != 0:
        raise error(f"`iptables -w {' '.join(args)}` failed (exit {done.returncode}): {done.stderr.strip()}")


def _own(chain: str) -> None:
    if not chain.startswith(CHAIN_PREFIX) or len(chain) > MAX_CHAIN_NAME:
        raise ValueError(f"not a chain of the harness's: {chain!r}")


def usable() -> str | None:
    """Why iptables cannot be used here (not root, not installed, the filter table unreadable); None when it can."""
    if os.geteuid() != 0:
        return "iptables needs root; the harness runs as uid " + str(os.geteuid())
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    try:
        done = _run(["-S", "OUTPUT"])
    except IptablesError as exc:
        return str(exc)
    return None if done.returncode == 0 else f"`iptables -w -S OUTPUT` failed: {done.stderr.strip()}"


def chain_exists(chain: str, error: type[Exception] = IptablesError) -> bool:
    _own(chain)
    return _run(["-S", chain], error).returncode == 0


def install(chain: str, rules: list[list[str]]) -> None:
    """Create `chain` with `rules` (each an argv after `-A CHAIN`), then jump to it first thing in OUTPUT."""
    _own(chain)
    if not chain_exists(chain):
        _check(["-N", chain])
    _check(["-F", chain])
    for rule in rules:
        _check(["-A", chain, *rule])
    if _run(["-C", "OUTPUT", "-j", chain]).returncode != 0:
        _check(["-I", "OUTPUT", "1", "-j", chain])


def remove(chain: str) -> None:
    """Delete every OUTPUT jump to `chain`, flush it and delete it. Idempotent: nothing there is fine."""
    _own(chain)
    while _run(["-C", "OUTPUT", "-j", chain], RevertError).returncode == 0:
        _check(["-D", "OUTPUT", "-j", chain], RevertError)
    if chain_exists(chain, RevertError):
        _check(["-F", chain], RevertError)
        _check(["-X", chain], RevertError)


def chains_named(prefix: str) -> list[str]:
    """The chains of the filter table whose names start with `prefix` (for tests and cleanups)."""
    done = _run(["-S"])
    return [line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N ") and line.split()[1].startswith(prefix)]
