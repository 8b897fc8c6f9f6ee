"""Apache Kafka's broker jars for the demo: the pinned version, the cache outside the repository, Maven, and java.

Standard library and chaos_events.errors only; never locust or gevent.

The version is pinned once, in `kafka/pom.xml` beside this module. `fetch()` copies that pom into the cache
(`~/.cache/chaos-events/kafka/VERSION`, or `$CHAOS_KAFKA_HOME/VERSION`) and runs `mvn dependency:copy-dependencies`
there, into a temporary directory that becomes `libs/` only once Maven succeeded, with a manifest of the jars and
the pom's hash. A cache whose manifest matches the pom and whose jars are all present is complete: it is used as
it is, with no Maven call at all, so a second fetch does nothing and the broker runs offline. An incomplete cache
is fetched with `mvn -o` first (the jars may already be in Maven's local repository), then online.

Example:
    libs = fetch().libs          # first time: Maven; afterwards: nothing to do
    java, libs = require()       # KafkaSetupError naming what is missing and the command that fixes it
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from chaos_events.errors import ChaosError

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
HOME_ENV = "CHAOS_KAFKA_HOME"
MANIFEST = "chaos-events-manifest.json"
FETCH_COMMAND = "python -m chaos_events.demo fetch-kafka"
MAVEN_TIMEOUT_S = 900.0


class KafkaSetupError(ChaosError):
    """Java, Maven or the Apache Kafka jars are missing, or Maven could not fetch them."""


@dataclass(frozen=True)
class FetchResult:
    libs: Path
    fetched: bool          # False: the cache was already complete and Maven was not called
    jars: int

    def describe(self, version: str) -> str:
        if self.fetched:
            return f"Apache Kafka {version}: fetched {self.jars} jars into {self.libs}"
        return f"Apache Kafka {version}: already in {self.libs} ({self.jars} jars); nothing to do"


def pinned_version(pom: Path = POM) -> str:
    """The `kafka.version` property of the pom."""
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise KafkaSetupError(f"{pom}: cannot read the Kafka pom ({exc})") from None
    node = root.find("{http://maven.apache.org/POM/4.0.0}properties/{http://maven.apache.org/POM/4.0.0}kafka.version")
    if node is None or not (node.text or "").strip():
        raise KafkaSetupError(f"{pom}: no <properties><kafka.version> element")
    return node.text.strip()


def cache_dir(version: str | None = None) -> Path:
    """Where one version is cached: $CHAOS_KAFKA_HOME/VERSION, default ~/.cache/chaos-events/kafka/VERSION."""
    root = Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "chaos-events" / "kafka").expanduser()
    return root / (version or pinned_version())


def libs_dir(version: str | None = None) -> Path:
    return cache_dir(version) / "libs"


def _pom_hash(pom: Path = POM) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def cached_jars(libs: Path, pom: Path = POM) -> list[str] | None:
    """The jar names of a complete cache (manifest matches the pom, every jar present); None otherwise."""
    try:
        manifest = json.loads((libs / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    jars = manifest.get("jars") if isinstance(manifest, dict) else None
    if manifest.get("pom_sha256") != _pom_hash(pom) or not isinstance(jars, list) or not jars:
        return None
    return jars if all((libs / name).is_file() for name in jars) else None


def fetch(offline: bool = False, pom: Path = POM) -> FetchResult:
    """Make the cache complete (see the module docstring); idempotent."""
    version = pinned_version(pom)
    home = cache_dir(version)
    libs = home / "libs"
    jars = cached_jars(libs, pom)
    if jars is not None:
        return FetchResult(libs, False, len(jars))
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaSetupError("mvn not found on PATH: Maven fetches the Apache Kafka jars (Debian: apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pom, home / "pom.xml")
    staging = home / f"libs.fetching-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        attempts = [["-o"]] if offline else [["-o"], []]
        failure = ""
        for extra in attempts:
            ok, failure = _copy_dependencies(mvn, home / "pom.xml", staging, extra)
            if ok:
                break
        else:
            where = "offline (from Maven's local repository only)" if offline else "from Maven Central"
            raise KafkaSetupError(f"Maven could not fetch Apache Kafka {version} {where}:\n{failure}")
        names = sorted(p.name for p in staging.glob("*.jar"))
        if not any(n.startswith("kafka_2.13-") for n in names):
            raise KafkaSetupError(f"Maven finished but {staging} has no kafka_2.13 jar (got {len(names)} jars)")
        (staging / MANIFEST).write_text(json.dumps({"version": version, "pom_sha256": _pom_hash(pom), "jars": names}, indent=1) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.replace(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FetchResult(libs, True, len(names))


def _copy_dependencies(mvn: str, pom: Path, out: Path, extra: list[str]) -> tuple[bool, str]:
    argv = [mvn, "-B", "-q", *extra, "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
    try:
        proc = subprocess.run(argv, cwd=pom.parent, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(argv)}: no result within {MAVEN_TIMEOUT_S:g} s"
    output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{output}"


def java_binary() -> str:
    """$JAVA_HOME/bin/java, else java on PATH (absolute, so a recorded command line stays the same)."""
    home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(home) / "bin" / "java")] if home else []
    candidates.append(shutil.which("java") or "")
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    raise KafkaSetupError("java not found ($JAVA_HOME/bin/java or java on PATH): Apache Kafka 4.x needs Java 17 or newer "
                          f"(Debian: apt-get install default-jre-headless); then run `{FETCH_COMMAND}`")


def require() -> tuple[str, Path]:
    """(java, libs dir) to run the pinned broker; KafkaSetupError saying what to install or run otherwise."""
    java = java_binary()
    version = pinned_version()
    libs = libs_dir(version)
    if cached_jars(libs) is None:
        raise KafkaSetupError(f"Apache Kafka {version} jars not found in {libs} (or incomplete): run `{FETCH_COMMAND}` "
                              f"(Maven, once; ${HOME_ENV} moves the cache)")
    return java, libs
