"""The wheel, as a user gets it: `python -m build --wheel` from a copy of the tree, installed without `-e` and without
extras into a fresh venv, then used from a working directory outside the repository with no PYTHONPATH, so nothing
can come from the source tree.

Checks that the wheel carries every non-Python file of the package (the chaos tab's page, the report templates, the
Kafka demo's pom.xml and log4j2.properties that `demo fetch-kafka` and the broker read), that it installs no
top-level package but `chaos_events`, and that a short headless Locust run with a scenario (one 1 s pause of a
`sleep` process, one SLO) exits 0 and writes the four reports. The load goes to a stdlib http.server on 127.0.0.1.
The build backend and the dependencies come from PyPI through pip, as `make venv` gets them. Every process started
here is ended by pid, even when the test fails.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from chaos_events.backends.process import proc_state, wait_until
from tests.helpers import ROOT, free_port, stop_group

pytestmark = pytest.mark.slow

PACKAGE = ROOT / "chaos_events"
REPORTS = ("chaos-report.json", "chaos-report.xml", "chaos-report.md", "chaos-report.html")
CHAOS_TAB = "chaos_events/locust_plugin/static/chaos.html"
KAFKA_DEMO_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (PACKAGE / "demo" / "kafka").iterdir() if p.is_file())

LOCUSTFILE = """
import chaos_events
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/")
"""

# One harmless fault (a 1 s SIGSTOP of our own `sleep`, always resumed) and one SLO.
SCENARIO = """
name: wheel-smoke
targets:
  victim: {{process: {{pidfile: "{pidfile}"}}}}
faults:
  - {{at: 1s, for: 1s, fault: pause, target: victim}}
slos:
  - {{name: few-errors, metric: error_rate, max: 0.5}}
"""

# Run by the installed interpreter: where chaos_events comes from, and whether the chaos tab's page loads from it.
PROBE = """
import importlib.util, json
import chaos_events
from chaos_events.locust_plugin.webui import _page_html
print(json.dumps({"package": chaos_events.__file__, "demo": importlib.util.find_spec("demo") is not None,
                  "chaos_tab_chars": len(_page_html())}))
"""


def _clean_env() -> dict:
    """The environment less anything that would make the source tree importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _run(argv: list, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=_clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, err = proc.communicate()
        pytest.fail(f"{argv[:4]} did not finish within {timeout}s\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `python -m build --wheel` makes from a copy of the tree (so the tree gets no build/ or egg-info)."""
    if importlib.util.find_spec("build") is None:
        pytest.fail("the `build` package is missing: it is in the dev extra (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "chaos_events", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = _run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "dist", source], tmp, 400)
    assert built.returncode == 0, f"python -m build failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    (found,) = (tmp / "dist").glob("chaos_events-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed, no `-e`, no extras; returns its bin directory."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    made = _run([sys.executable, "-m", "venv", venv], venv.parent, 120)
    assert made.returncode == 0, made.stderr[-3000:]
    pip = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], venv.parent, 500)
    assert pip.returncode == 0, f"installing the wheel failed:\n{pip.stdout[-3000:]}\n{pip.stderr[-3000:]}"
    return venv / "bin"


def test_the_wheel_carries_every_non_python_file_of_the_package_and_nothing_else_at_top_level(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    data_files = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert CHAOS_TAB in data_files and KAFKA_DEMO_FILES, (sorted(data_files), KAFKA_DEMO_FILES)
    assert {"chaos_events/demo/kafka/pom.xml", "chaos_events/demo/kafka/log4j2.properties"} <= set(KAFKA_DEMO_FILES)
    assert sorted(data_files - names) == []
    top_level = {name.split("/", 1)[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"chaos_events"}, sorted(top_level)


def test_the_installed_package_has_the_chaos_tab_and_no_top_level_demo(installed, tmp_path):
    probe = _run([installed / "python", "-c", PROBE], tmp_path, 120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    package_dir = Path(found["package"]).parent
    assert package_dir.is_relative_to(installed.parent), found      # the venv's copy, not the source tree
    assert not package_dir.is_relative_to(ROOT), found
    assert found["demo"] is False, found
    assert found["chaos_tab_chars"] == len((PACKAGE / "locust_plugin" / "static" / "chaos.html").read_text())
    assert (package_dir / "locust_plugin" / "static" / "chaos.html").is_file()
    for name in KAFKA_DEMO_FILES:
        assert (package_dir.parent / name).is_file(), name
    assert not (package_dir.parent / "demo").exists()


def _serve(tmp: Path, procs: list) -> str:
    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>ok</p>\n")
    port = free_port()
    procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True))

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    assert wait_until(listening, 20), f"the test HTTP server did not listen on 127.0.0.1:{port}"
    return f"http://127.0.0.1:{port}"


def test_a_headless_run_from_the_installed_wheel_exits_0_and_writes_the_reports(installed, tmp_path):
    procs: list[subprocess.Popen] = []
    try:
        host = _serve(tmp_path, procs)
        victim = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        procs.append(victim)
        (tmp_path / "victim.pid").write_text(f"{victim.pid}\n")
        (tmp_path / "lf.py").write_text(textwrap.dedent(LOCUSTFILE))
        (tmp_path / "scenario.yml").write_text(SCENARIO.format(pidfile=tmp_path / "victim.pid"))
        run = _run([installed / "locust", "-f", "lf.py", "--headless", "-u", "1", "-r", "1", "-t", "3s",
                    "--host", host, "--chaos-plan", "scenario.yml", "--chaos-report-dir", "reports",
                    "--chaos-metrics-port", "0"], tmp_path, 120)
        output = run.stdout[-3000:] + run.stderr[-3000:]
        assert run.returncode == 0, output
        for name in REPORTS:
            assert (tmp_path / "reports" / name).stat().st_size > 0, (name, output)
        report = json.loads((tmp_path / "reports" / "chaos-report.json").read_text())
        assert [r["status"] for r in report["verdict"]["results"]] == ["pass"], report["verdict"]
        assert proc_state(victim.pid) not in (None, "T"), "the victim was left paused"
    finally:
        for proc in procs:
            stop_group(proc)
