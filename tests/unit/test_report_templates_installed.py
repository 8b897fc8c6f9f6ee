"""An installed chaos-events finds its report templates: a wheel built from this tree carries them as package data,
and the loader reads them from the installed package, not from a path relative to the source tree.

Builds one wheel (pip fetches the build backend named in pyproject.toml, as `make venv` does) from a copy of the
tree, so the source tree gets no build/ or egg-info from this test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import ROOT

TEMPLATES = sorted(p.name for p in (ROOT / "chaos_events" / "verdict" / "templates").glob("*.j2"))

# Runs in a fresh interpreter whose chaos_events is the unpacked wheel; prints where everything came from.
PROBE = """
import json, sys, tempfile
import chaos_events
from chaos_events.record import Record
from chaos_events.scenario.model import Plan
from chaos_events.verdict.report import write_reports
from chaos_events.verdict.slo import evaluate
from chaos_events.verdict.documents import html_environment, markdown_environment

plan = Plan(name="installed", source="s.yml", targets={}, probes={}, faults=(), slos=())
record = Record(run_id="r0", scenario="installed", start_wall=1_700_000_000.0)
out = tempfile.mkdtemp()
paths = write_reports(evaluate(plan, record), plan, record, out)
print(json.dumps({
    "package": chaos_events.__file__,
    "templates": {name: env.get_template(name).filename for env in (markdown_environment(), html_environment())
                  for name in env.list_templates()},
    "markdown": open(paths["markdown"]).read(), "html": open(paths["html"]).read(),
}))
"""


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "chaos_events", source / "chaos_events", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, f"building the wheel failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    (wheel,) = wheels.glob("chaos_events-*.whl")
    return wheel


def test_an_installed_wheel_renders_the_reports_from_its_own_templates(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        packaged = sorted(Path(n).name for n in archive.namelist() if n.startswith("chaos_events/verdict/templates/"))
        assert packaged == TEMPLATES
        site = tmp_path / "site"
        archive.extractall(site)  # a pure-Python wheel installs by unpacking
    # PYTHONPATH comes before the virtualenv's site-packages, where the editable install points at the source tree
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=60)
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout)
    assert Path(seen["package"]).is_relative_to(site), seen["package"]
    assert sorted(seen["templates"]) == TEMPLATES
    assert all(Path(path).is_relative_to(site) for path in seen["templates"].values()), seen["templates"]
    assert seen["markdown"].startswith("# Chaos test results: installed\n")
    assert seen["html"].startswith("<!DOCTYPE html>") and "<svg " in seen["html"]
